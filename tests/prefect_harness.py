"""One Prefect API for the whole test session, started only when a test asks for it.

``prefect_test_harness()`` runs a server on a temporary SQLite database; it takes 6-19 s to start
here, so every test that needs Prefect shares this one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

__all__ = ["prefect_harness"]


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Point Prefect at a throwaway server for the session; yields its API URL."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_LOCAL_STORAGE_PATH,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    # The server subprocess inherits these settings: no telemetry calls out of the test machine.
    # Task results (and so their cache) go to a fresh folder: a cache from an earlier session
    # must not satisfy this session's tasks.
    storage = tmp_path_factory.mktemp("prefect-results")
    with (
        temporary_settings(updates={PREFECT_SERVER_ANALYTICS_ENABLED: False, PREFECT_LOCAL_STORAGE_PATH: storage}),
        prefect_test_harness(server_startup_timeout=120),
    ):
        yield str(PREFECT_API_URL.value())
