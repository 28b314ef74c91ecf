"""Flow parameters as pydantic models, so the Prefect UI renders a form for each flow.

The forms put the circuit first, offer block pickers for the cluster and the result storage (the
saved ``QCOS Cluster`` and ``QCOS Result Storage`` blocks), and show each optional field as a plain
input: left empty, it takes its default (``_one_type`` removes the "None" alternative from the form,
which the UI would otherwise show as a type switch reading 'Property is type "None"'). Programs
and the CLI may still pass a block's name, a cluster YAML path or a storage URL as text.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from blocks.cluster import QCOSCluster
from blocks.storage import QCOSResultStorage
from network.cutting.experiments import ShotAllocation
from network.planning import Strategy

__all__ = [
    "ClusterParameter",
    "ExecuteShardsRequest",
    "NightlyParameters",
    "RunCircuitParameters",
    "RunSweepParameters",
    "StorageParameter",
    "block_name",
]

Mode = Literal["emulated", "live", "dry_run"]


def _one_type(schema: dict[str, Any]) -> None:
    """Show an optional field as its one type (a saved block's picker where it takes a block)."""
    options = schema.pop("anyOf", None)
    if options is None:
        return
    blocks = [o for o in options if "$ref" in o]
    if blocks:
        schema["allOf"] = blocks[:1]
        return
    kept = [o for o in options if o.get("type") != "null"]
    if len(kept) == 1:
        schema.update(kept[0])
    else:
        schema["anyOf"] = kept


#: A cluster: a saved block (the form's picker), or as text a block name or a cluster YAML path.
ClusterParameter = Annotated[
    QCOSCluster | str | None,
    Field(
        description="The cluster: a saved 'QCOS Cluster' block (as text: a block name or a cluster YAML path). "
        "Empty: one local_cpu node per core.",
        json_schema_extra=_one_type,
    ),
]
#: Where results go: a saved block (the form's picker), or as text a block name or an fsspec URL.
StorageParameter = Annotated[
    QCOSResultStorage | str | None,
    Field(
        description="Where results go: a saved 'QCOS Result Storage' block (as text: a block name or an fsspec URL, "
        "file:///... or s3://bucket/prefix). Empty: $QCOS_RESULTS_URL or the user's data directory.",
        json_schema_extra=_one_type,
    ),
]
ModeParameter = Annotated[
    Mode, Field(description="emulated: nothing leaves the machine; live: real devices; dry_run: plan only.")
]
SeedParameter = Annotated[
    int | None,
    Field(
        ge=0,
        description="Base seed: the same seed reproduces the counts and re-attaches to jobs. Empty: a fresh one, "
        "recorded in the result.",
        json_schema_extra=_one_type,
    ),
]


def block_name(value: QCOSCluster | QCOSResultStorage | str | None) -> str | None:
    """What tasks in other processes are given: a saved block's name, or the text as it came."""
    if value is None or isinstance(value, str):
        return value
    name = getattr(value, "_block_document_name", None)
    if not name:
        from network.errors import SpecError

        raise SpecError(f"A {type(value).__name__} block given as a parameter must be a saved one (it has no name).")
    return str(name)


class RunCircuitParameters(BaseModel):
    """What the run-circuit form asks for."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    circuit: str = Field(
        ...,
        description="OpenQASM 2 or 3 text, or a path / URL (file://, s3://) of a .qasm file.",
        json_schema_extra={"format": "text"},
    )
    cluster: ClusterParameter = None
    storage: StorageParameter = None
    shots: int = Field(1024, ge=1, le=10_000_000, description="Total shots.")
    mode: ModeParameter = "emulated"
    seed: SeedParameter = None
    name: str | None = Field(None, description="Label for the run.", json_schema_extra=_one_type)
    observables: list[str] | None = Field(
        None,
        description="Pauli strings (qubit 0 rightmost) whose expectation values to estimate instead of counts; "
        "circuits wider than every node are cut.",
        json_schema_extra=_one_type,
    )
    max_cost: float | None = Field(
        None,
        ge=0,
        validation_alias=AliasChoices("max_cost", "budget"),
        description="Budget: refuse plans whose estimated cost exceeds this, cut runs included. Empty: no budget.",
        json_schema_extra=_one_type,
    )
    strategy: Strategy | None = Field(
        None, description="Force a strategy. Empty: the planner chooses.", json_schema_extra=_one_type
    )
    allow_approximate: bool = Field(
        True, description="Whether approximate (matrix product state) nodes may take what nothing exact can."
    )
    max_sampling_overhead: float = Field(1000.0, ge=1, description="Bound on the cutting sampling overhead.")
    max_subexperiments: int = Field(
        1000, ge=1, description="Bound on the subexperiments a cut may need, counted before any is generated."
    )
    shot_allocation: ShotAllocation = Field(
        ShotAllocation.PROPORTIONAL,
        description="How a cut's shots are shared among its subexperiments: proportional to their "
        "coefficients, or uniform.",
    )
    joint_cuts: bool = Field(
        True,
        description="Decompose cuts between the same two pieces jointly where that is cheaper (two CX: 49 instead "
        "of 81, two wires: 49 instead of 256).",
    )
    target_precision: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="Expectation values: run the cut's subexperiments in rounds until every standard error is at "
        "most this, or the shot budget (shots per subexperiment) is spent; empty spends the budget at once.",
        json_schema_extra=_one_type,
    )
    pool_timeout: float = Field(
        600.0,
        gt=0,
        description="Seconds shards sent to a work pool may wait for a worker to start them; past it the run fails "
        "saying which pool has no worker.",
    )


class RunSweepParameters(BaseModel):
    """What the run-sweep form asks for."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    circuit: str = Field(
        ...,
        description="A parameterized circuit: OpenQASM 3 text with 'input float' parameters, or a path / URL.",
        json_schema_extra={"format": "text"},
    )
    grid: dict[str, list[float]] | None = Field(
        None,
        description="Values per parameter; every combination runs. Give this, bindings or bindings_file.",
        json_schema_extra=_one_type,
    )
    bindings: list[dict[str, float]] | None = Field(
        None, description="Explicit bindings, one mapping per run.", json_schema_extra=_one_type
    )
    bindings_file: str | None = Field(
        None,
        description="Path or URL (file://, s3://) of the bindings: a JSON list of mappings, a CSV or a parquet "
        "table with one column per parameter. For large sweeps (flow parameters are limited in size).",
        json_schema_extra=_one_type,
    )
    cluster: ClusterParameter = None
    storage: StorageParameter = None
    shots: int = Field(1024, ge=1, le=10_000_000, description="Shots per binding.")
    mode: ModeParameter = "emulated"
    seed: SeedParameter = None
    name: str | None = Field(None, description="Label for the sweep.", json_schema_extra=_one_type)

    @model_validator(mode="after")
    def _one_of(self) -> RunSweepParameters:
        given = [x for x in (self.grid, self.bindings, self.bindings_file) if x is not None]
        if len(given) != 1:
            raise ValueError("Give exactly one of grid, bindings or bindings_file.")
        return self


class NightlyParameters(BaseModel):
    """What the nightly benchmark form asks for (the schedule gives none: every default applies)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    cluster: ClusterParameter = None
    storage: StorageParameter = None
    shots: int = Field(4096, ge=1, le=10_000_000, description="Shots per benchmark circuit.")
    seed: int | None = Field(
        None,
        ge=0,
        description="Base seed of the night. Empty (what the schedule does): a fresh seed every night, recorded in "
        "the trend, so every night is new work with its own results.",
        json_schema_extra=_one_type,
    )
    nights: int = Field(30, ge=1, description="How many nights the trend artifact shows.")


class ExecuteShardsRequest(BaseModel):
    """The batch of shards a work pool's execute-shards deployment runs (one request per pool)."""

    model_config = ConfigDict(extra="forbid")

    qasm: str = Field(..., description="The circuit, as OpenQASM.")
    plan: dict[str, Any] = Field(..., description="The ShardPlan as a dict (ShardPlan.to_dict()).")
    shard_ids: list[int] = Field(..., min_length=1, description="Shards of the plan to run here.")
    cluster: str | None = Field(None, description="The cluster's block name or YAML path.")
    storage: str | None = Field(None, description="The result storage's block name or URL.")
    mode: Mode = Field("emulated", description="The mode of the run the shards belong to.")
    seed: int | None = Field(None, ge=0, description="The run's base seed.")
    spec_options: dict[str, Any] = Field(default_factory=dict, description="Spec fields used to rebuild the circuit.")
    run_key: str | None = Field(
        None,
        description="The run the shards belong to, when it is not the plan's own key (a later round of a "
        "target_precision run: its plan holds that round's shards).",
    )
