"""Create the QCOS automations on the Prefect server that PREFECT_API_URL names (idempotent, by name).

    .venv/bin/python deployments/automations.py [--within SECONDS]

A worker and its flow process that die (a machine lost, a SIGKILL) leave their run "Running" forever,
and a Cancel on it sticks in "Cancelling": nobody is left to act. Deployment runs send a heartbeat
every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (prefect.yaml sets 30 for every deployment); these
automations act on their absence:

* ``qcos: crash unresponsive runs``: a flow run whose heartbeats stop for ``--within`` seconds
  (default 90: three missed beats) without a final state is marked Crashed, so "Retry" in the UI
  works (a retry re-attaches to the jobs the run submitted, through the ledger).
* ``qcos: finish stuck cancellations``: a run still Cancelling ``--within`` seconds after the
  request, with no heartbeat since, is marked Cancelled.

``deployments/create_pools.sh`` runs this script.
"""

from __future__ import annotations

import argparse
import contextlib
from datetime import timedelta

from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

FINAL = {f"prefect.flow-run.{state}" for state in ("Completed", "Failed", "Cancelled", "Crashed")}
CRASH = "qcos: crash unresponsive runs"
CANCEL = "qcos: finish stuck cancellations"


def _silence(name: str, description: str, after: str, within: float, state: StateType, message: str) -> Automation:
    """An automation that sets ``state`` on a flow run when ``after`` is followed by neither a
    heartbeat nor a final state for ``within`` seconds."""
    return Automation(
        name=name,
        description=description,
        trigger=EventTrigger(
            after={after},
            expect={"prefect.flow-run.heartbeat", *FINAL},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=within),
        ),
        actions=[ChangeFlowRunState(state=state, message=message)],
    )


def automations(within: float) -> list[Automation]:
    """The two automations (see the module docstring), for a silence of ``within`` seconds."""
    return [
        _silence(
            CRASH,
            f"Mark a flow run Crashed when its heartbeats stop for {within:g} s before a final state "
            "(its worker or process died).",
            "prefect.flow-run.heartbeat",
            within,
            StateType.CRASHED,
            f"No heartbeat for {within:g} s: the worker or flow process died. Retry re-attaches "
            "to the jobs it submitted.",
        ),
        _silence(
            CANCEL,
            f"Mark a flow run Cancelled when it is still Cancelling {within:g} s after the request "
            "with no heartbeat (nobody is left to cancel it).",
            "prefect.flow-run.Cancelling",
            within,
            StateType.CANCELLED,
            f"Cancelled: still Cancelling after {within:g} s with no heartbeat (its worker is gone).",
        ),
    ]


def install(within: float = 90.0) -> list[str]:
    """Create or replace the automations; returns their names."""
    names = []
    for automation in automations(within):
        with contextlib.suppress(ValueError):  # none of that name yet
            Automation.read(name=automation.name).delete()
        automation.create()
        names.append(automation.name)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--within", type=float, default=90.0, help="seconds of silence before acting (default 90)")
    args = parser.parse_args()
    if args.within < 30:
        parser.error("--within must be at least 30 s (heartbeats come every 30 s at the most)")
    for name in install(args.within):
        print(f"automation {name!r} is in place")


if __name__ == "__main__":
    main()
