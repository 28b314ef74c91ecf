"""The user's request: a circuit (object or OpenQASM) and how to sample it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from qiskit import QuantumCircuit

from network.circuits import CircuitAnalysis, analyze_circuit, parse_qasm
from network.compilation import MAX_CIRCUIT_QUBITS, UnitaryForm, lower_circuit, unitary_form
from network.errors import SpecError
from network.planning import Strategy

__all__ = ["VirtualCircuitSpec", "STRATEGIES", "validate_shots"]

#: Strategies a spec may force; ``None`` lets the planner choose.
STRATEGIES = tuple(s.value for s in Strategy)


def validate_shots(shots: Any, *, what: str = "shots") -> int:
    """Return ``shots`` as an int, or raise :class:`SpecError` quoting it."""
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise SpecError(f"{what} must be a positive integer, got {shots!r}.")
    return int(shots)


@dataclass(frozen=True, eq=False)
class VirtualCircuitSpec:
    """A circuit to run on the distributed QVM.

    Give exactly one of ``circuit_object`` or ``qasm`` (OpenQASM 2 or 3 text).

    Attributes:
        n_logical_qubits: Width the caller expects; checked against the circuit when given.
        circuit_object: A Qiskit circuit with measurements.
        qasm: OpenQASM 2 or 3 source, parsed with Qiskit's own parsers.
        shots: Shots for this run; ``None`` uses the QVM's default.
        seed: Base seed; every shard's seed derives from it, so a spec with a seed gives the same
            counts every time. ``None`` draws one, recorded in the result.
        strategy: Force ``"whole"``, ``"shot_split"``, ``"partition"`` or ``"cut"`` (counts
            reconstructed from cut subexperiments); ``None`` lets the planner choose by its cost
            model, and cuts only circuits wider than every exact node.
        allow_approximate: Whether approximate (matrix product state) nodes may be used.
        max_cost: Budget: a plan whose estimated cost exceeds it is refused before anything runs.
        observables: Pauli strings or ``SparsePauliOp`` (one or a list). The result then carries
            their expectation values with standard errors; circuits wider than every node are cut.
            Final measurements are ignored; mid-circuit measurements, resets and classical control
            act as they would (deferred onto ancillas, see :mod:`network.compilation`).
        max_sampling_overhead: Bound on the sampling overhead of the cuts (9 per CX gate cut,
            16 per wire cut); a plan above it is refused with the numbers and the alternatives.
        max_subexperiments: Bound on the subexperiments a cut may need (QPD terms times pieces
            times observable groups), estimated before any is generated; a cut above it is
            refused (or the circuit goes whole to an allowed MPS node), with the count.
        plan_time_budget: Seconds the cut search may spend (shared by the blocks it cuts); it
            returns its best cut so far.
        shot_allocation: How a cut's shot budget is shared among its distinct subexperiments:
            ``"proportional"`` to their QPD coefficients (default) or ``"uniform"``.
        joint_cuts: Decompose cuts between the same two pieces jointly where that is cheaper
            (default): two CX gate cuts cost 49 instead of 81 (teleported, with one ancilla per
            cut on each piece's node), two wire cuts 49 instead of 256 (see
            :mod:`network.cutting.joint`). ``False`` prices and runs every cut alone.
        target_precision: Expectation values only: run the cut's subexperiments in rounds until every
            value's standard error is at most this, or the shot budget (``shots`` per subexperiment,
            as without it) is spent. A pilot round gives every distinct subexperiment a few shots;
            each later round gives them shots in proportion to their estimated share of the
            variance (Neyman allocation, :mod:`network.cutting.precision`), as new shards. The
            result says which stop came first (``QVMResult.precision``). ``None`` (default) runs the
            whole budget at once, shared by ``shot_allocation``.
        name: Label for results and logs.
        metadata: Free-form, JSON-serializable, copied into the result.

    Raises:
        SpecError: Bad shots or seed, both or neither circuit inputs, a width mismatch.
        CircuitParseError: Invalid OpenQASM.
    """

    n_logical_qubits: int | None = None
    circuit_object: QuantumCircuit | None = None
    qasm: str | None = None
    shots: int | None = None
    seed: int | None = None
    strategy: str | None = None
    allow_approximate: bool = True
    max_cost: float | None = None
    observables: Any = None
    max_sampling_overhead: float = 1000.0
    max_subexperiments: int = 1000
    plan_time_budget: float = 0.5
    shot_allocation: str = "proportional"
    joint_cuts: bool = True
    target_precision: float | None = None
    name: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.circuit_object is None) == (self.qasm is None):
            raise SpecError("Give exactly one of circuit_object= or qasm=.")
        if self.circuit_object is not None and not isinstance(self.circuit_object, QuantumCircuit):
            raise SpecError(
                f"circuit_object must be a qiskit QuantumCircuit, got {type(self.circuit_object).__name__}."
            )
        if self.shots is not None:
            validate_shots(self.shots)
        if not isinstance(self.joint_cuts, bool):
            raise SpecError(f"joint_cuts must be True or False, got {self.joint_cuts!r}.")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise SpecError(f"seed must be a non-negative integer or None, got {self.seed!r}.")
        if self.max_cost is not None and (
            isinstance(self.max_cost, bool) or not isinstance(self.max_cost, int | float) or not self.max_cost >= 0
        ):
            raise SpecError(f"max_cost must be a number >= 0 or None, got {self.max_cost!r}.")
        if self.strategy is not None:
            strategy = str(self.strategy).lower()
            if strategy not in STRATEGIES:
                raise SpecError(f"Unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}.")
            object.__setattr__(self, "strategy", strategy)
        circuit = self.circuit
        if circuit.num_qubits > MAX_CIRCUIT_QUBITS:
            raise SpecError(
                f"The circuit has {circuit.num_qubits:,} qubits, above the limit of {MAX_CIRCUIT_QUBITS:,}."
            )
        if self.n_logical_qubits is not None:
            if isinstance(self.n_logical_qubits, bool) or not isinstance(self.n_logical_qubits, int):
                raise SpecError(f"n_logical_qubits must be an integer, got {self.n_logical_qubits!r}.")
            if self.n_logical_qubits != circuit.num_qubits:
                raise SpecError(
                    f"n_logical_qubits ({self.n_logical_qubits}) does not match the circuit, "
                    f"which has {circuit.num_qubits} qubits."
                )
        if not (isinstance(self.max_sampling_overhead, int | float) and self.max_sampling_overhead >= 1):
            raise SpecError(f"max_sampling_overhead must be a number >= 1, got {self.max_sampling_overhead!r}.")
        if isinstance(self.max_subexperiments, bool) or not isinstance(self.max_subexperiments, int):
            raise SpecError(f"max_subexperiments must be a positive integer, got {self.max_subexperiments!r}.")
        if self.max_subexperiments < 1:
            raise SpecError(f"max_subexperiments must be a positive integer, got {self.max_subexperiments!r}.")
        budget = self.plan_time_budget
        if isinstance(budget, bool) or not isinstance(budget, int | float) or not 0 < budget <= 3600:
            raise SpecError(f"plan_time_budget must be a number of seconds in (0, 3600], got {budget!r}.")
        from network.cutting import ShotAllocation, parse_observables

        try:
            object.__setattr__(self, "shot_allocation", ShotAllocation(str(self.shot_allocation).lower()).value)
        except ValueError:
            choices = ", ".join(a.value for a in ShotAllocation)
            raise SpecError(f"Unknown shot_allocation {self.shot_allocation!r}; choose one of {choices}.") from None
        if self.target_precision is not None:
            precision = self.target_precision
            if isinstance(precision, bool) or not isinstance(precision, int | float) or not 0 < precision < math.inf:
                raise SpecError(f"target_precision must be a positive, finite number or None, got {precision!r}.")
            if self.observables is None:
                raise SpecError(
                    f"target_precision={precision!r} applies to expectation values: give observables= (a "
                    "counts run has no standard error to reach)."
                )
            object.__setattr__(self, "target_precision", float(precision))
        if self.observables is not None:
            object.__setattr__(self, "observables", parse_observables(self.observables, circuit.num_qubits))
        elif circuit.num_clbits == 0:
            raise SpecError(
                "The circuit has no classical bits, so there is nothing to sample; add measurements "
                "(e.g. circuit.measure_all()), or give observables=."
            )
        object.__setattr__(self, "metadata", dict(self.metadata))
        _ = self.lowered  # an opaque gate fails here, before anything is planned

    @cached_property
    def circuit(self) -> QuantumCircuit:
        """The circuit, parsed from ``qasm`` on first use."""
        if self.circuit_object is not None:
            return self.circuit_object
        assert self.qasm is not None
        return parse_qasm(self.qasm)

    @cached_property
    def lowered(self) -> QuantumCircuit:
        """The circuit with every gate standard and on at most two qubits, classical bits and
        measurements unchanged (:func:`network.compilation.lower_circuit`)."""
        return lower_circuit(self.circuit)

    def unitary(self, *, coherent_reads: bool = False) -> UnitaryForm:
        """The lowered circuit as a unitary with its measurements deferred, lowered again (what the
        cutter takes; see :func:`network.compilation.unitary_form`). ``coherent_reads`` for
        expectation values: a measured qubit whose bit is read later loses its coherence.

        Raises:
            CircuitCompileError: Control flow that cannot be deferred (``while``, ``switch``...).
        """
        key = "_unitary_coherent" if coherent_reads else "_unitary"
        cached = self.__dict__.get(key)
        if cached is None:
            form = unitary_form(self.lowered, coherent_reads=coherent_reads)
            cached = replace(form, circuit=lower_circuit(form.circuit))
            self.__dict__[key] = cached
        return cached

    @cached_property
    def analysis(self) -> CircuitAnalysis:
        """Components, counts and hash of the circuit (computed once)."""
        return analyze_circuit(self.circuit)

    @property
    def label(self) -> str:
        return self.name or self.circuit.name
