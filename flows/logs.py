"""The core's log lines in the Prefect UI.

``network`` and ``providers`` log retries, failovers, re-attachments, cancellations and reuse with
the standard ``logging`` module (they import no Prefect). Inside a flow or task run these records are
also sent to that run's logs through Prefect's API log handler, so the UI shows them beside the
flow's own lines; outside any run nothing is sent.
"""

from __future__ import annotations

import logging

__all__ = ["install_run_logging", "CORE_LOGGERS"]

#: Loggers of the core whose records reach the run's logs.
CORE_LOGGERS = ("network", "providers")

_installed = False


class _RunLogHandler(logging.Handler):
    """Prefect's ``APILogHandler`` for records emitted inside a flow or task run only."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        from prefect.logging.handlers import APILogHandler

        self._api = APILogHandler()

    def emit(self, record: logging.LogRecord) -> None:
        from prefect.context import FlowRunContext, TaskRunContext

        if TaskRunContext.get() is None and FlowRunContext.get() is None:
            return
        self._api.handle(record)


def install_run_logging() -> None:
    """Attach the run log handler to :data:`CORE_LOGGERS` (once per process) and let their INFO
    records through (without a handler of its own, Python prints only warnings and errors)."""
    global _installed
    if _installed:
        return
    handler = _RunLogHandler()
    for name in CORE_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
        logger.addHandler(handler)
    _installed = True
