"""Provider families. Each module imports its vendor SDK lazily, inside the module only."""
