"""List prices of the cloud targets the providers know, each in the shape its vendor bills, dated per row.

Every row is a :mod:`network.pricing` billing shape with the date it was read (``as_of``) and where
(``source``): Braket QPUs per task and shot, Braket's simulators per minute with a 3 s minimum per
task, IBM per QPU second, IonQ on Azure per gate-shot with a minimum per program, Rigetti on Azure per
10 ms slice, Quantinuum in HQCs (eHQCs on its emulator) at a dollar rate the user supplies. Prices
change: ``qcos providers`` warns about every row more than a year old (:func:`stale_prices`).

A cluster file overrides a row per node group: ``cost_per_task``, ``cost_per_shot`` and
``cost_per_second`` become the rates of a per-task-and-shot, per-second or per-minute row (the
simulators keep their 3 s minimum); on a gate-shot, time-slice or HQC row they replace the shape with
those flat prices. ``hqc_rate`` (dollars per HQC or eHQC) prices a Quantinuum row; without it
Quantinuum nodes are planned at $0 and a warning says so. A target missing here is priced at zero
unless the cluster file prices it, and a warning says so too.

Units: US dollars. Not modelled: reservations, credits and free tiers, volume discounts, taxes.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from datetime import date

from network.errors import ClusterConfigError
from network.pricing import (
    EHQC,
    HQC,
    Billing,
    GateCounts,
    GateShot,
    PerMinute,
    PerSecond,
    PerTaskShot,
    TimeSlice,
)

__all__ = [
    "MAX_AGE_DAYS",
    "PRICES",
    "PRICE_TABLE_DATE",
    "Price",
    "lookup_price",
    "node_prices",
    "row_date",
    "stale_prices",
]

log = logging.getLogger(__name__)

#: A row older than this (by its ``as_of``) is stale: ``qcos providers`` warns about it.
MAX_AGE_DAYS = 365


@dataclass(frozen=True)
class Price:
    """One target's list price: its billing shape, dated and sourced.

    ``per_task``, ``per_shot`` and ``per_second`` are the shape's nearest flat prices (what a node's
    ``cost_per_*`` fields show); :meth:`estimate` bills the shape itself.
    """

    billing: Billing

    @property
    def per_task(self) -> float:
        return self.billing.flat[0]

    @property
    def per_shot(self) -> float:
        return self.billing.flat[1]

    @property
    def per_second(self) -> float:
        return self.billing.flat[2]

    @property
    def as_of(self) -> str:
        return self.billing.as_of

    @property
    def source(self) -> str:
        return self.billing.source

    @property
    def shape(self) -> str:
        return self.billing.kind

    def estimate(self, *, shots: int, tasks: int = 1, seconds: float = 0.0, gates: GateCounts | None = None) -> float:
        """Dollars for ``tasks`` jobs of a circuit with ``gates``, sharing ``shots`` and ``seconds`` of device time."""
        return self.billing.estimate(shots, seconds, tasks, gates)


_BRAKET = "aws.amazon.com/braket/pricing"
_BRAKET_FEE = _BRAKET + " (the $0.30 task fee the page lists for every QPU)"
_BRAKET_SIM = _BRAKET + " (3 s minimum per task, as braket.tracking.Tracker bills it)"
_IBM = "ibm.com/quantum/pricing (pay-as-you-go)"
_AZURE = "learn.microsoft.com/azure/quantum/pricing"
_AZURE_HQC = _AZURE + " (HQC formula at your Quantinuum contract's rate)"
#: Figures of the 2025-02..2026-05 survey of the vendors' pages, dated by its end; rows not in it keep
#: the date they were last checked (2025-06-01).
_SURVEY = "2026-05"
_CHECKED = "2025-06-01"


def _braket_qpu(per_shot: float, as_of: str = _SURVEY, source: str = _BRAKET_FEE, label: str = "") -> Price:
    return Price(
        PerTaskShot(per_task=0.30, per_shot=per_shot, as_of=as_of, source=source, label=label or "Braket task + shots")
    )


def _braket_sim(per_minute: float) -> Price:
    return Price(PerMinute(per_minute=per_minute, minimum_seconds=3.0, as_of=_SURVEY, source=_BRAKET_SIM,
                           label="Braket simulator minutes"))  # fmt: skip


def _ibm() -> Price:
    return Price(PerSecond(per_second=1.60, as_of=_SURVEY, source=_IBM, label="IBM QPU seconds"))


def _free(source: str, label: str) -> Price:
    return Price(PerTaskShot(as_of=_CHECKED, source=source + " (free)", label=label))


#: ``(provider key, target) -> Price``. Targets are the names each provider's ``target`` argument takes.
PRICES: dict[tuple[str, str], Price] = {
    # Amazon Braket QPUs: a fee per task plus one per shot
    ("aws_braket", "ionq_forte"): _braket_qpu(0.08, source=_BRAKET),
    ("aws_braket", "iqm_garnet"): _braket_qpu(0.00145, source=_BRAKET),
    ("aws_braket", "iqm_emerald"): _braket_qpu(0.00160),
    ("aws_braket", "aqt_ibex_q1"): _braket_qpu(0.0235),
    ("aws_braket", "rigetti_cepheus"): _braket_qpu(0.000425),
    # not in the survey: last checked 2025-06 (Cepheus succeeds Ankaa on Braket)
    ("aws_braket", "ionq_aria"): _braket_qpu(0.03, as_of=_CHECKED, source=_BRAKET),
    ("aws_braket", "rigetti_ankaa"): _braket_qpu(0.0009, as_of=_CHECKED, source=_BRAKET),
    # Amazon Braket managed simulators: per minute, billed by the millisecond, at least 3 s per task
    ("aws_braket", "sv1"): _braket_sim(0.075),
    ("aws_braket", "dm1"): _braket_sim(0.075),
    ("aws_braket", "tn1"): _braket_sim(0.275),
    # IBM Quantum pay-as-you-go: per second of QPU time, every processor family
    ("ibm_quantum", "ibm_heron"): _ibm(),
    ("ibm_quantum", "ibm_eagle"): _ibm(),
    # Azure Quantum pay-as-you-go
    ("azure_quantum", "ionq.qpu.aria-1"): Price(
        GateShot(
            one_qubit=0.000220,
            two_qubit=0.000975,
            minimum=97.50,
            minimum_without_mitigation=12.42,
            as_of=_SURVEY,
            source=_AZURE,
            label="IonQ gate-shots",
        )
    ),
    ("azure_quantum", "rigetti.qpu.ankaa-3"): Price(
        TimeSlice(price=0.013, slice_ms=10.0, as_of=_SURVEY, source=_AZURE, label="Rigetti 10 ms slices")
    ),
    ("azure_quantum", "quantinuum.qpu.h2-1"): Price(HQC(as_of=_SURVEY, source=_AZURE_HQC, label="Quantinuum HQCs")),
    ("azure_quantum", "quantinuum.sim.h2-1e"): Price(
        EHQC(as_of=_SURVEY, source=_AZURE_HQC, label="Quantinuum emulator eHQCs")
    ),
    ("azure_quantum", "ionq.simulator"): _free(_AZURE, "IonQ simulator"),
    ("azure_quantum", "rigetti.sim.qvm"): _free(_AZURE, "Rigetti QVM"),
}


def row_date(as_of: str) -> date:
    """The day a row's ``as_of`` names (``YYYY-MM`` is its first day: the oldest it can be)."""
    parts = [int(p) for p in as_of.split("-")]
    return date(parts[0], parts[1], parts[2] if len(parts) > 2 else 1)


#: When the newest row was read.
PRICE_TABLE_DATE = max(row_date(p.as_of) for p in PRICES.values()).isoformat()


def _today() -> date:
    return date.today()


def stale_prices(today: date | None = None, max_age_days: int = MAX_AGE_DAYS) -> list[tuple[str, str, Price, int]]:
    """Rows read more than ``max_age_days`` before ``today``: ``(provider key, target, price, age in days)``."""
    today = today or _today()
    out = []
    for (provider, target), price in PRICES.items():
        age = (today - row_date(price.as_of)).days
        if age > max_age_days:
            out.append((provider, target, price, age))
    return out


def lookup_price(provider_key: str, target: str) -> Price | None:
    """The list price of ``target`` on ``provider_key``, or ``None`` when the table lacks it."""
    return PRICES.get((provider_key, target))


def node_prices(
    provider_key: str,
    target: str | None,
    *,
    cost_per_task: float | None = None,
    cost_per_shot: float | None = None,
    cost_per_second: float | None = None,
    hqc_rate: float | None = None,
    error_mitigation: bool | None = None,
) -> dict[str, float | Billing | None]:
    """The price fields of a node (``cost_per_task``, ``cost_per_shot``, ``cost_per_second``, ``billing``).

    Args:
        provider_key: The provider's key.
        target: The target's name in :data:`PRICES` (``None``: a target the table cannot know).
        cost_per_task: The cluster file's override (see the module's docstring for what overrides do).
        cost_per_shot: Likewise.
        cost_per_second: Likewise.
        hqc_rate: Dollars per HQC (eHQC on an emulator) for a Quantinuum row.
        error_mitigation: For a gate-shot row: whether jobs run with error mitigation (default: on),
            which picks the program minimum.

    A target the table lacks, with no price from the cluster file, is priced at zero and logged; so
    is a Quantinuum row without ``hqc_rate``.

    Raises:
        ClusterConfigError: ``hqc_rate`` is not a finite number >= 0.
    """
    price = lookup_price(provider_key, target) if target else None
    given = {"cost_per_task": cost_per_task, "cost_per_shot": cost_per_shot, "cost_per_second": cost_per_second}
    overridden = any(value is not None for value in given.values())
    if hqc_rate is not None and (
        isinstance(hqc_rate, bool)
        or not isinstance(hqc_rate, int | float)
        or not math.isfinite(hqc_rate)
        or hqc_rate < 0
    ):
        raise ClusterConfigError(
            f"{provider_key} target {target!r}: hqc_rate must be a finite number >= 0, got {hqc_rate!r}."
        )
    billing = price.billing if price is not None else None
    if price is None and not overridden:
        log.warning(
            "%s target %r has no list price in providers/prices.py; its nodes are priced at zero unless the "
            "cluster file sets cost_per_task, cost_per_shot or cost_per_second.",
            provider_key,
            target,
        )
    if isinstance(billing, HQC):
        if hqc_rate is not None:
            source = f"{billing.source}, rate: the cluster file's hqc_rate"
            billing = replace(billing, rate=float(hqc_rate), source=source)
        elif not overridden:
            log.warning(
                "%s target %r bills in %ss at the dollar rate of your Quantinuum contract, which the price table "
                "cannot know: its nodes are planned at $0. Set hqc_rate (dollars per %s) on the node group.",
                provider_key,
                target,
                billing.unit,
                billing.unit,
            )
    elif hqc_rate is not None:
        log.warning("%s target %r does not bill in HQCs; hqc_rate is ignored.", provider_key, target)
    if isinstance(billing, GateShot) and error_mitigation is not None:
        billing = replace(billing, error_mitigation=bool(error_mitigation))
    if overridden:
        shaped = billing.with_overrides(cost_per_task, cost_per_shot, cost_per_second) if billing is not None else None
        if shaped is None:
            flat = billing.flat if billing is not None else (0.0, 0.0, 0.0)
            defaults = dict(zip(given, flat, strict=True))
            fields: dict[str, float | Billing | None] = {
                name: float(value) if value is not None else defaults[name] for name, value in given.items()
            }
            fields["billing"] = None
            return fields
        billing = shaped
    flat = billing.flat if billing is not None else (0.0, 0.0, 0.0)
    return {**dict(zip(given, flat, strict=True)), "billing": billing}
