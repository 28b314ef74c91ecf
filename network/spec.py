"""The user's request: a circuit (object or OpenQASM) and how to sample it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from qiskit import QuantumCircuit

from network.circuits import CircuitAnalysis, analyze_circuit, parse_qasm
from network.errors import SpecError

__all__ = ["VirtualCircuitSpec", "STRATEGIES", "validate_shots"]

#: Strategies a spec may force; ``None`` lets the planner choose.
STRATEGIES = ("whole", "shot_split", "partition", "cut")


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
            Final measurements are ignored.
        max_sampling_overhead: Bound on the sampling overhead of the cuts (9 per CX gate cut,
            16 per wire cut); a plan above it is refused with the numbers and the alternatives.
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
        if self.observables is not None:
            from network.cutting import parse_observables

            object.__setattr__(self, "observables", parse_observables(self.observables, circuit.num_qubits))
            if any(inst.name == "measure" for inst in self.unmeasured_circuit.data):
                raise SpecError("Observables need a circuit without mid-circuit measurements.")
        elif circuit.num_clbits == 0:
            raise SpecError(
                "The circuit has no classical bits, so there is nothing to sample; add measurements "
                "(e.g. circuit.measure_all()), or give observables=."
            )
        object.__setattr__(self, "metadata", dict(self.metadata))

    @cached_property
    def circuit(self) -> QuantumCircuit:
        """The circuit, parsed from ``qasm`` on first use."""
        if self.circuit_object is not None:
            return self.circuit_object
        assert self.qasm is not None
        return parse_qasm(self.qasm)

    @cached_property
    def unmeasured_circuit(self) -> QuantumCircuit:
        """The circuit without its final measurements and unused classical bits (what observables
        are measured on)."""
        circuit = self.circuit.remove_final_measurements(inplace=False)
        if circuit.num_clbits:
            from qiskit.circuit import Clbit
            from qiskit.converters import circuit_to_dag, dag_to_circuit

            dag = circuit_to_dag(circuit)
            idle = [wire for wire in dag.idle_wires() if isinstance(wire, Clbit)]
            if idle:
                dag.remove_clbits(*idle)
                circuit = dag_to_circuit(dag)
        return circuit

    @cached_property
    def analysis(self) -> CircuitAnalysis:
        """Components, counts and hash of the circuit (computed once)."""
        return analyze_circuit(self.circuit)

    @property
    def label(self) -> str:
        return self.name or self.circuit.name
