"""How vendors bill a job: billing shapes, their estimates and how each estimate adds up. Pure: no I/O, no SDK.

A node's price is one of these shapes (:attr:`~network.node_providers.QPUNodeSpec.billing`), or the
flat ``cost_per_task``/``cost_per_shot``/``cost_per_second`` of the node when it has none:

* :class:`PerTaskShot`: a fee per task (program) plus one per shot (Amazon Braket's QPUs).
* :class:`PerSecond`: per second of device time (IBM Quantum's QPU seconds, pay-as-you-go).
* :class:`PerMinute`: per minute of simulation, billed per millisecond with a minimum duration per
  task (Amazon Braket's SV1, DM1, TN1: 3 s, as the SDK's cost ``Tracker`` bills them).
* :class:`GateShot`: per one- and two-qubit gate-shot, with a minimum per program that depends on
  error mitigation (IonQ on Azure Quantum).
* :class:`TimeSlice`: a price per started slice of N milliseconds of device time (Rigetti on Azure
  Quantum: 10 ms; a partial slice is billed whole).
* :class:`HQC` / :class:`EHQC`: Quantinuum's H-System Quantum Credits, ``HQC = 5 + C (N1q + 10 N2q +
  5 Nm) / 5000`` per program with ``C`` its shots, times a dollar rate per (e)HQC the user supplies
  (Quantinuum sells them by subscription, at rates of its contracts).

Every shape estimates ``tasks`` programs of one circuit (``gates``, per circuit) sharing ``shots`` and
``seconds`` evenly, and says how the estimate adds up (:meth:`Billing.breakdown`), quoting its
numbers and where they came from. Shapes are frozen dataclasses and JSON-serializable
(:meth:`Billing.to_dict`, :func:`billing_from_dict`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

if TYPE_CHECKING:
    from qiskit import QuantumCircuit

__all__ = [
    "EHQC",
    "HQC",
    "Billing",
    "GateCounts",
    "GateShot",
    "PerMinute",
    "PerSecond",
    "PerTaskShot",
    "TimeSlice",
    "billing_from_dict",
    "gate_counts",
    "usd",
]

_PASSIVE = frozenset({"barrier", "delay", "global_phase"})
_SPAM = frozenset({"measure", "reset"})


class GateCounts(NamedTuple):
    """The operations of one circuit, as vendors count them for a bill.

    Attributes:
        one_qubit: Single-qubit gates.
        two_qubit: Two-qubit gates; a gate on ``k > 2`` qubits counts ``6 (k - 2)`` (IonQ's rule).
        measurements: Measurements and resets (Quantinuum's ``Nm``, as azure-quantum's own
            ``Quantinuum.estimate_cost`` counted them).
    """

    one_qubit: int = 0
    two_qubit: int = 0
    measurements: int = 0

    def describe(self) -> str:
        return f"{self.one_qubit} 1q, {self.two_qubit} 2q, {self.measurements} measurements"


def gate_counts(circuit: QuantumCircuit) -> GateCounts:
    """Count ``circuit``'s operations (barriers, delays and phases excluded; control-flow bodies counted once)."""
    one = two = meas = 0
    for inst in circuit.data:
        op = inst.operation
        name = op.name
        blocks = getattr(op, "blocks", ())
        if blocks:
            for block in blocks:
                inner = gate_counts(block)
                one, two, meas = one + inner.one_qubit, two + inner.two_qubit, meas + inner.measurements
            continue
        if name in _PASSIVE or not inst.qubits:
            continue
        if name in _SPAM:
            meas += 1
        elif len(inst.qubits) == 1:
            one += 1
        elif len(inst.qubits) == 2:
            two += 1
        else:
            two += 6 * (len(inst.qubits) - 2)
    return GateCounts(one, two, meas)


def usd(amount: float) -> str:
    """Dollars as a bill writes them: cents from $1 up, more digits below (``$0.000220``)."""
    if amount == 0:
        return "$0"
    if abs(amount) >= 0.01:  # cents, and up to two more digits where the amount has them
        text = f"{amount:,.4f}".rstrip("0")
        return "$" + text + "0" * (2 - len(text.split(".")[1]))
    return f"${amount:.6f}" if abs(amount) >= 1e-6 else f"${amount:.3g}"


def _num(value: float) -> str:
    """A count or a duration without noise: ``10000``, ``333.3``, ``1.002``."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.1f}" if abs(value) >= 1000 else f"{value:.4g}"


@dataclass(frozen=True, kw_only=True)
class Billing:
    """How one target bills a job. Subclasses set :attr:`kind` and implement :meth:`_one`.

    Attributes:
        as_of: When the price was read (``YYYY-MM`` or ``YYYY-MM-DD``).
        source: Where it was read (a vendor's pricing page, an SDK's device properties...).
        label: What the bill is called in breakdowns (``"IonQ gate-shots"``).
    """

    kind: ClassVar[str] = ""
    as_of: str = ""
    source: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{type(self).__name__}.{f.name} must be a finite number >= 0, got {value!r}.")

    # -- what a subclass provides ---------------------------------------------------------

    def _one(self, shots: float, seconds: float, gates: GateCounts | None) -> tuple[float, str]:
        """Dollars for one program of ``shots`` shots taking ``seconds``, and how they add up."""
        raise NotImplementedError

    @property
    def flat(self) -> tuple[float, float, float]:
        """The nearest flat ``(per task, per shot, per second)`` prices (zeros where there are none)."""
        return 0.0, 0.0, 0.0

    def with_overrides(
        self, per_task: float | None, per_shot: float | None, per_second: float | None
    ) -> Billing | None:
        """This shape with a cluster file's flat prices as its rates, or ``None`` when the shape has no
        such rates (the node is then priced flat)."""
        return None

    # -- the common part ------------------------------------------------------------------

    def estimate(
        self, shots: int | float, seconds: float = 0.0, tasks: int = 1, gates: GateCounts | None = None
    ) -> float:
        """Dollars for ``tasks`` programs of a circuit with ``gates``, sharing ``shots`` and ``seconds`` evenly."""
        if tasks <= 0:
            return 0.0
        return tasks * self._one(shots / tasks, seconds / tasks, gates)[0]

    def breakdown(
        self, shots: int | float, seconds: float = 0.0, tasks: int = 1, gates: GateCounts | None = None
    ) -> str:
        """How :meth:`estimate` adds up, its numbers quoted, with the price's source and date."""
        label = self.label or self.kind
        if tasks <= 0:
            return f"{label}: no program = $0"
        total, text = self._one(shots / tasks, seconds / tasks, gates)
        if tasks > 1:
            text = f"{tasks} programs x [{text}] = {usd(tasks * total)}"
        cited = ", ".join(part for part in (self.source, self.as_of) if part)
        return f"{label}: {text}" + (f" ({cited})" if cited else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable; :func:`billing_from_dict` inverts it."""
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True, kw_only=True)
class PerTaskShot(Billing):
    """A fee per task plus one per shot (Amazon Braket's QPUs)."""

    kind: ClassVar[str] = "per_task_shot"
    per_task: float = 0.0
    per_shot: float = 0.0

    def _one(self, shots: float, seconds: float, gates: GateCounts | None) -> tuple[float, str]:
        total = self.per_task + shots * self.per_shot
        return total, f"1 task x {usd(self.per_task)} + {_num(shots)} shots x {usd(self.per_shot)} = {usd(total)}"

    @property
    def flat(self) -> tuple[float, float, float]:
        return self.per_task, self.per_shot, 0.0

    def with_overrides(
        self, per_task: float | None, per_shot: float | None, per_second: float | None
    ) -> Billing | None:
        if per_second:
            return None
        return PerTaskShot(
            per_task=self.per_task if per_task is None else float(per_task),
            per_shot=self.per_shot if per_shot is None else float(per_shot),
            as_of=self.as_of,
            source=f"cluster file over {self.source}" if self.source else "cluster file",
            label=self.label,
        )


@dataclass(frozen=True, kw_only=True)
class PerSecond(Billing):
    """Per second of device time (IBM Quantum's QPU seconds)."""

    kind: ClassVar[str] = "per_second"
    per_second: float = 0.0

    def _one(self, shots: float, seconds: float, gates: GateCounts | None) -> tuple[float, str]:
        total = seconds * self.per_second
        return total, f"{_num(seconds)} s x {usd(self.per_second)}/s = {usd(total)}"

    @property
    def flat(self) -> tuple[float, float, float]:
        return 0.0, 0.0, self.per_second

    def with_overrides(
        self, per_task: float | None, per_shot: float | None, per_second: float | None
    ) -> Billing | None:
        if per_task or per_shot:
            return None
        rate = self.per_second if per_second is None else float(per_second)
        source = f"cluster file over {self.source}" if self.source else "cluster file"
        return PerSecond(per_second=rate, as_of=self.as_of, source=source, label=self.label)


@dataclass(frozen=True, kw_only=True)
class PerMinute(Billing):
    """Per minute of simulation, billed by the millisecond with a minimum per task (Braket's simulators)."""

    kind: ClassVar[str] = "per_minute"
    per_minute: float = 0.0
    minimum_seconds: float = 3.0

    def _billed(self, seconds: float) -> float:
        return max(math.ceil(round(seconds * 1000, 6)) / 1000, self.minimum_seconds)

    def _one(self, shots: float, seconds: float, gates: GateCounts | None) -> tuple[float, str]:
        billed = self._billed(seconds)
        total = billed / 60 * self.per_minute
        floor = f"max({_num(seconds)} s, {_num(self.minimum_seconds)} s minimum) = " if self.minimum_seconds else ""
        return total, f"{floor}{_num(billed)} s x {usd(self.per_minute)}/min = {usd(total)}"

    @property
    def flat(self) -> tuple[float, float, float]:
        return 0.0, 0.0, self.per_minute / 60

    def with_overrides(
        self, per_task: float | None, per_shot: float | None, per_second: float | None
    ) -> Billing | None:
        if per_task or per_shot:
            return None
        rate = self.per_minute if per_second is None else float(per_second) * 60
        source = f"cluster file over {self.source}" if self.source else "cluster file"
        return PerMinute(
            per_minute=rate, minimum_seconds=self.minimum_seconds, as_of=self.as_of, source=source, label=self.label
        )


@dataclass(frozen=True, kw_only=True)
class GateShot(Billing):
    """Per one- and two-qubit gate-shot, at least a minimum per program (IonQ on Azure Quantum).

    Attributes:
        one_qubit: Dollars per single-qubit gate-shot.
        two_qubit: Dollars per two-qubit gate-shot.
        minimum: Least a program costs with error mitigation on.
        minimum_without_mitigation: Least a program costs with error mitigation off.
        error_mitigation: Whether the node's jobs run with error mitigation (IonQ's default: on).
    """

    kind: ClassVar[str] = "gate_shot"
    one_qubit: float = 0.0
    two_qubit: float = 0.0
    minimum: float = 0.0
    minimum_without_mitigation: float = 0.0
    error_mitigation: bool = True

    @property
    def program_minimum(self) -> float:
        return self.minimum if self.error_mitigation else self.minimum_without_mitigation

    def _one(self, shots: float, seconds: float, gates: GateCounts | None) -> tuple[float, str]:
        floor = self.program_minimum
        mitigation = "error mitigation on" if self.error_mitigation else "error mitigation off"
        if gates is None:
            return floor, f"gate counts unknown: the {usd(floor)} program minimum ({mitigation})"
        gate_cost = shots * (gates.one_qubit * self.one_qubit + gates.two_qubit * self.two_qubit)
        text = (
            f"{_num(shots)} shots x ({gates.one_qubit} x 1q x {usd(self.one_qubit)} + "
            f"{gates.two_qubit} x 2q x {usd(self.two_qubit)}) = {usd(gate_cost)}"
        )
        if gate_cost < floor:
            return floor, f"{text}, below the {usd(floor)} program minimum ({mitigation}): {usd(floor)}"
        return gate_cost, text


@dataclass(frozen=True, kw_only=True)
class TimeSlice(Billing):
    """A price per started slice of ``slice_ms`` milliseconds of device time (Rigetti on Azure Quantum)."""

    kind: ClassVar[str] = "time_slice"
    price: float = 0.0
    slice_ms: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.slice_ms > 0:
            raise ValueError(f"TimeSlice.slice_ms must be > 0, got {self.slice_ms!r}.")

    def _one(self, shots: float, seconds: float, gates: GateCounts | None) -> tuple[float, str]:
        slices = math.ceil(round(seconds * 1000 / self.slice_ms, 6))
        total = slices * self.price
        return total, (
            f"{_num(seconds)} s = {slices} slice(s) of {_num(self.slice_ms)} ms (a partial slice counts whole) "
            f"x {usd(self.price)} = {usd(total)}"
        )

    @property
    def flat(self) -> tuple[float, float, float]:
        return 0.0, 0.0, self.price / (self.slice_ms / 1000)


@dataclass(frozen=True, kw_only=True)
class HQC(Billing):
    """Quantinuum's H-System Quantum Credits: ``5 + C (N1q + 10 N2q + 5 Nm) / 5000`` per program.

    Attributes:
        rate: Dollars per credit, from the user's Quantinuum contract; ``None``: not given (priced $0).
    """

    kind: ClassVar[str] = "hqc"
    unit: ClassVar[str] = "HQC"
    rate: float | None = None

    def credits(self, shots: float, gates: GateCounts) -> float:
        """Credits of one program of ``shots`` shots."""
        return 5 + shots * (gates.one_qubit + 10 * gates.two_qubit + 5 * gates.measurements) / 5000

    def _one(self, shots: float, seconds: float, gates: GateCounts | None) -> tuple[float, str]:
        counts = gates if gates is not None else GateCounts()
        credits = self.credits(shots, counts)
        formula = (
            f"5 + {_num(shots)} shots x ({counts.one_qubit} 1q + 10 x {counts.two_qubit} 2q + 5 x "
            f"{counts.measurements} measurements)/5000 = {_num(credits)} {self.unit}"
            + ("" if gates is not None else " (gate counts unknown: the 5-credit base only)")
        )
        if self.rate is None:
            return 0.0, f"{formula}, no {self.unit} rate given (set hqc_rate in the cluster file): $0"
        total = credits * self.rate
        return total, f"{formula} x {usd(self.rate)}/{self.unit} = {usd(total)}"


@dataclass(frozen=True, kw_only=True)
class EHQC(HQC):
    """Quantinuum's emulator credits (eHQC): the HQC formula at the emulator's rate."""

    kind: ClassVar[str] = "ehqc"
    unit: ClassVar[str] = "eHQC"


_KINDS: dict[str, type[Billing]] = {
    cls.kind: cls for cls in (PerTaskShot, PerSecond, PerMinute, GateShot, TimeSlice, HQC, EHQC)
}


def billing_from_dict(data: Mapping[str, Any] | Billing) -> Billing:
    """The shape :meth:`Billing.to_dict` wrote (a :class:`Billing` passes through).

    Raises:
        ValueError: An unknown ``kind``, unknown fields, or a negative or non-finite number.
    """
    if isinstance(data, Billing):
        return data
    values = dict(data)
    kind = values.pop("kind", None)
    cls = _KINDS.get(str(kind))
    if cls is None:
        raise ValueError(f"Unknown billing kind {kind!r}; known: {', '.join(_KINDS)}.")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"Billing {kind!r} has no field(s) {', '.join(unknown)}; its fields: {', '.join(sorted(known))}."
        )
    return cls(**values)
