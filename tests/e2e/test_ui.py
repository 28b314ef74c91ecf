"""The Prefect UI as users meet it, in a real headless Chromium: run forms with the circuit first,
block pickers for the cluster and the storage, no 'Property is type "None"', descriptions, images
that render, and a server on a port other than 4200 whose UI talks to that port.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install chromium chromium-driver``); it
skips where they are missing. ``dev/ui_screenshots.py`` runs the same checks and refreshes the
screenshots in docs/ui.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_run_forms_and_artifacts_in_a_real_browser(tmp_path: Path) -> None:
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if importlib.util.find_spec("selenium") is None:
        missing.append("selenium")
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install chromium chromium-driver)")
    sys.path.insert(0, str(REPO / "dev"))
    try:
        import ui_screenshots
    finally:
        sys.path.pop(0)
    checks = ui_screenshots.capture(tmp_path)
    failed = [f"{c.name} ({c.detail})" for c in checks if not c.ok]
    assert not failed, failed
    assert {p.name for p in tmp_path.glob("*.png")} >= {"run-circuit-form.png", "nightly-form.png", "artifacts.png"}
