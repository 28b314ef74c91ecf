"""Flow parameters as pydantic models, so the Prefect UI renders a form for each flow."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from network.cutting.experiments import ShotAllocation
from network.planning import Strategy

__all__ = ["RunCircuitParameters", "RunSweepParameters", "ExecuteShardsRequest"]

Mode = Literal["emulated", "live", "dry_run"]


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cluster: str | None = Field(
        None,
        description="Name of a saved 'QCOS Cluster' block, or a path to a cluster YAML file. "
        "Empty: one local_cpu node per core.",
    )
    storage: str | None = Field(
        None,
        description="Name of a saved 'QCOS Result Storage' block, or an fsspec URL (file:///..., s3://bucket/prefix). "
        "Empty: $QCOS_RESULTS_URL or the user's data directory.",
    )
    mode: Mode = Field(
        "emulated", description="emulated: nothing leaves the machine; live: real devices; dry_run: plan only."
    )
    seed: int | None = Field(
        None, ge=0, description="Base seed; the same seed reproduces the counts and re-attaches to jobs."
    )


class RunCircuitParameters(_Common):
    """What the run-circuit form asks for."""

    circuit: str = Field(
        ...,
        description="OpenQASM 2 or 3 text, or a path / URL (file://, s3://) of a .qasm file.",
        json_schema_extra={"format": "text"},
    )
    shots: int = Field(1024, ge=1, le=10_000_000, description="Total shots.")
    max_cost: float | None = Field(
        None,
        ge=0,
        validation_alias=AliasChoices("max_cost", "budget"),
        description="Budget: refuse plans whose estimated cost exceeds this, cut runs included.",
    )
    strategy: Strategy | None = Field(None, description="Force a strategy; empty lets the planner choose.")
    allow_approximate: bool = Field(
        True, description="Whether approximate (matrix product state) nodes may take what nothing exact can."
    )
    name: str | None = Field(None, description="Label for the run.")
    observables: list[str] | None = Field(
        None,
        description="Pauli strings (qubit 0 rightmost) whose expectation values to estimate instead of counts; "
        "circuits wider than every node are cut.",
    )
    max_sampling_overhead: float = Field(1000.0, ge=1, description="Bound on the cutting sampling overhead.")
    max_subexperiments: int = Field(
        1000, ge=1, description="Bound on the subexperiments a cut may need, counted before any is generated."
    )
    pool_timeout: float = Field(
        600.0,
        gt=0,
        description="Seconds shards sent to a work pool may wait for a worker to start them; past it the run fails "
        "saying which pool has no worker.",
    )
    shot_allocation: ShotAllocation = Field(
        ShotAllocation.PROPORTIONAL,
        description="How a cut's shots are shared among its subexperiments: proportional to their "
        "coefficients, or uniform.",
    )


class RunSweepParameters(_Common):
    """What the run-sweep form asks for."""

    circuit: str = Field(
        ...,
        description="A parameterized circuit: OpenQASM 3 text with 'input float' parameters, or a path / URL.",
        json_schema_extra={"format": "text"},
    )
    grid: dict[str, list[float]] | None = Field(
        None, description="Values per parameter; every combination runs. Give this or bindings."
    )
    bindings: list[dict[str, float]] | None = Field(None, description="Explicit bindings, one mapping per run.")
    bindings_file: str | None = Field(
        None,
        description="Path or URL (file://, s3://) of the bindings: a JSON list of mappings, a CSV or a parquet "
        "table with one column per parameter. For large sweeps (flow parameters are limited in size).",
    )
    shots: int = Field(1024, ge=1, le=10_000_000, description="Shots per binding.")
    name: str | None = Field(None, description="Label for the sweep.")

    @model_validator(mode="after")
    def _one_of(self) -> RunSweepParameters:
        given = [x for x in (self.grid, self.bindings, self.bindings_file) if x is not None]
        if len(given) != 1:
            raise ValueError("Give exactly one of grid, bindings or bindings_file.")
        return self


class ExecuteShardsRequest(_Common):
    """The batch of shards a work pool's execute-shards deployment runs (one request per pool)."""

    qasm: str = Field(..., description="The circuit, as OpenQASM.")
    plan: dict[str, Any] = Field(..., description="The ShardPlan as a dict (ShardPlan.to_dict()).")
    shard_ids: list[int] = Field(..., min_length=1, description="Shards of the plan to run here.")
    spec_options: dict[str, Any] = Field(default_factory=dict, description="Spec fields used to rebuild the circuit.")
