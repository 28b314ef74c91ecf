"""One Prefect API for the whole test session, started only when a test asks for it.

``prefect_test_harness()`` runs a server on a temporary SQLite database; it takes 6-19 s to start
here, so every test that needs Prefect shares this one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

__all__ = ["prefect_harness"]


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[str]:
    """Point Prefect at a throwaway server for the session; yields its API URL."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_ANALYTICS_ENABLED, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    # The server subprocess inherits these settings: no telemetry calls out of the test machine.
    with (
        temporary_settings(updates={PREFECT_SERVER_ANALYTICS_ENABLED: False}),
        prefect_test_harness(server_startup_timeout=120),
    ):
        yield str(PREFECT_API_URL.value())
