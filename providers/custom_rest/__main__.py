"""``python -m providers.custom_rest``: the reference server (same options as ``providers.custom_rest.server``)."""

from providers.custom_rest.server import main

main()
