"""List prices of the cloud targets the providers know, dated, for the planner's cost model.

Prices change: every entry says when it was read and from where. A cluster file overrides them per
node group (``cost_per_shot``, ``cost_per_task``, ``cost_per_second``); a target missing here is
priced at zero unless the cluster file prices it, and the plan says so.

Units: US dollars. ``per_task`` is charged once per submitted job (circuit), ``per_shot`` per shot,
``per_second`` per second of device time (IBM's QPU seconds, Braket's managed simulators' minutes
divided by 60). Vendors' minimum charges, reservations, credits (Azure Quantum's HQC and AQT, Braket
free tiers) and taxes are not modelled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

__all__ = ["PRICES", "PRICE_TABLE_DATE", "Price", "lookup_price", "node_prices"]

log = logging.getLogger(__name__)

#: When the table was last checked against the vendors' pricing pages.
PRICE_TABLE_DATE = "2025-06-01"


@dataclass(frozen=True)
class Price:
    """One target's list price.

    Attributes:
        per_task: Dollars per job (circuit) submitted.
        per_shot: Dollars per shot.
        per_second: Dollars per second of device (or managed-simulator) time.
        as_of: When it was read.
        source: Where it was read.
    """

    per_task: float = 0.0
    per_shot: float = 0.0
    per_second: float = 0.0
    as_of: str = PRICE_TABLE_DATE
    source: str = ""

    def estimate(self, *, shots: int, tasks: int = 1, seconds: float = 0.0) -> float:
        """Dollars for ``tasks`` jobs totalling ``shots`` shots and ``seconds`` of device time."""
        return tasks * self.per_task + shots * self.per_shot + seconds * self.per_second


_BRAKET = "aws.amazon.com/braket/pricing"
_IBM = "ibm.com/quantum/pricing (pay-as-you-go)"
_AZURE = "learn.microsoft.com/azure/quantum/pricing"

#: ``(provider key, target) -> Price``. Targets are the names each provider's ``target`` argument takes.
PRICES: dict[tuple[str, str], Price] = {
    # Amazon Braket QPUs: a per-task fee plus a per-shot fee
    ("aws_braket", "ionq_forte"): Price(per_task=0.30, per_shot=0.08, source=_BRAKET),
    ("aws_braket", "ionq_aria"): Price(per_task=0.30, per_shot=0.03, source=_BRAKET),
    ("aws_braket", "rigetti_ankaa"): Price(per_task=0.30, per_shot=0.0009, source=_BRAKET),
    ("aws_braket", "iqm_garnet"): Price(per_task=0.30, per_shot=0.00145, source=_BRAKET),
    # Amazon Braket managed simulators: billed per minute of simulation (minimum 3 s)
    ("aws_braket", "sv1"): Price(per_second=0.075 / 60, source=_BRAKET),
    ("aws_braket", "dm1"): Price(per_second=0.075 / 60, source=_BRAKET),
    ("aws_braket", "tn1"): Price(per_second=0.275 / 60, source=_BRAKET),
    # IBM Quantum pay-as-you-go: per second of QPU time
    ("ibm_quantum", "ibm_heron"): Price(per_second=1.60, source=_IBM),
    ("ibm_quantum", "ibm_eagle"): Price(per_second=1.60, source=_IBM),
    # Azure Quantum pay-as-you-go (approximations: IonQ bills per gate-shot, Rigetti per time slice)
    ("azure_quantum", "ionq.qpu.aria-1"): Price(per_task=1.0, per_shot=0.03, source=_AZURE),
    ("azure_quantum", "ionq.simulator"): Price(source=_AZURE),
    ("azure_quantum", "rigetti.qpu.ankaa-3"): Price(per_second=0.02 / 0.01, source=_AZURE),  # $0.02 per 10 ms
    ("azure_quantum", "rigetti.sim.qvm"): Price(source=_AZURE),
    # Quantinuum bills HQCs under a subscription; this per-shot figure is a planning placeholder
    ("azure_quantum", "quantinuum.qpu.h2-1"): Price(per_shot=0.08, source=_AZURE + " (HQC estimate)"),
    ("azure_quantum", "quantinuum.sim.h2-1e"): Price(source=_AZURE),
}


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
) -> dict[str, float]:
    """The ``cost_per_*`` fields of a node: the cluster file's values where given, else the table's.

    A target the table lacks, with no value from the cluster file, is priced at zero and logged.
    """
    price = lookup_price(provider_key, target) if target else None
    given = {"cost_per_task": cost_per_task, "cost_per_shot": cost_per_shot, "cost_per_second": cost_per_second}
    if price is None and all(value is None for value in given.values()):
        log.warning(
            "%s target %r has no list price in providers/prices.py; its nodes are priced at zero unless the "
            "cluster file sets cost_per_task, cost_per_shot or cost_per_second.",
            provider_key,
            target,
        )
    table = price or Price()
    defaults = {"cost_per_task": table.per_task, "cost_per_shot": table.per_shot, "cost_per_second": table.per_second}
    return {name: float(value) if value is not None else defaults[name] for name, value in given.items()}
