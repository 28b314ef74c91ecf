"""Circuit cutting, one module per stage, each pure (no I/O, no executor):

* :mod:`~network.cutting.search`: where to cut, for the cluster's nodes (candidates from
  qiskit-addon-cutting's ``find_cuts`` and node-sized partitions, ranked; bounded in overhead,
  subexperiments and time).
* :mod:`~network.cutting.decomposition`: a chosen cut as a serializable :class:`CutBlock` and its
  subexperiments, rebuilt identically in any process (:func:`block_problem`).
* :mod:`~network.cutting.experiments`: each distinct subexperiment generated once, shots shared in
  proportion to the QPD coefficients.
* :mod:`~network.cutting.reconstruction`: distributions and expectation values back from the
  subexperiments' counts.

The planner (:mod:`network.planning`) turns each block's distinct subexperiments into shards; they
run through the one executor like any shard, and :mod:`network.reconstruction` calls
:func:`reconstruct_block`.
"""

from __future__ import annotations

from network.cutting.decomposition import (
    MAX_DENSE_QUBITS,
    MAX_DISTRIBUTION_QUBITS,
    MAX_RECONSTRUCTION_WORK,
    MAX_SUPPORT,
    BlockChoice,
    BlockKind,
    BlockProblem,
    BlockSource,
    CutBlock,
    CutLocation,
    DistributionProblem,
    DistributionTooLargeError,
    apply_cuts,
    block_problem,
    block_source,
    build_distribution_problem,
    check_distribution_size,
    cut_locations,
    drop_idle_qubits,
    find_distribution_problem,
    parse_observables,
    plan_block,
)
from network.cutting.experiments import (
    MIN_CIRCUIT_SHOTS,
    ShotAllocation,
    SubexperimentShots,
    allocate_shots,
    count_distinct,
    generate_experiments,
    share_shots,
)
from network.cutting.reconstruction import (
    BOOTSTRAP,
    BlockEstimate,
    Expectations,
    SparseQuasi,
    estimate_distribution,
    estimate_expectations,
    nearest_probability_distribution,
    over_clbits,
    reconstruct_block,
    reconstruct_distribution,
    reconstruct_sparse,
    sample_counts,
    to_quasi_dict,
    total_variation,
)
from network.cutting.search import (
    DEFAULT_MAX_SUBEXPERIMENTS,
    DEFAULT_TIME_BUDGET,
    CutCandidate,
    RejectedCut,
    candidate_cuts,
    choose_cut,
    rank_candidates,
    strip_barriers,
)

__all__ = [
    "BOOTSTRAP",
    "DEFAULT_MAX_SUBEXPERIMENTS",
    "DEFAULT_TIME_BUDGET",
    "MAX_DENSE_QUBITS",
    "MAX_DISTRIBUTION_QUBITS",
    "MAX_RECONSTRUCTION_WORK",
    "MAX_SUPPORT",
    "MIN_CIRCUIT_SHOTS",
    "BlockChoice",
    "BlockEstimate",
    "BlockKind",
    "BlockProblem",
    "BlockSource",
    "CutBlock",
    "CutCandidate",
    "CutLocation",
    "DistributionProblem",
    "DistributionTooLargeError",
    "Expectations",
    "SparseQuasi",
    "RejectedCut",
    "ShotAllocation",
    "SubexperimentShots",
    "allocate_shots",
    "apply_cuts",
    "block_problem",
    "block_source",
    "build_distribution_problem",
    "candidate_cuts",
    "check_distribution_size",
    "choose_cut",
    "count_distinct",
    "cut_locations",
    "drop_idle_qubits",
    "estimate_distribution",
    "estimate_expectations",
    "find_distribution_problem",
    "generate_experiments",
    "nearest_probability_distribution",
    "over_clbits",
    "parse_observables",
    "plan_block",
    "rank_candidates",
    "reconstruct_block",
    "reconstruct_distribution",
    "reconstruct_sparse",
    "sample_counts",
    "share_shots",
    "strip_barriers",
    "to_quasi_dict",
    "total_variation",
]
