"""Screenshots of the Prefect UI as QCOS users meet it, from a real headless Chromium.

    .venv/bin/python dev/ui_screenshots.py [--out docs/ui] [--port 4321]

Starts a throwaway Prefect server with ``deployments/local_server.sh`` on a port other than 4200 (the
UI must call that port), registers the blocks, saves an example cluster and storage block, creates
the pools and automations, deploys ``prefect.yaml``, runs ``run-circuit`` once against the server (so
its run page has artifacts), then opens each page in headless Chromium (Debian's ``chromium`` and
``chromium-driver`` packages, driven by ``selenium``), saves one PNG per page and checks what the
issue asked of the forms: the circuit first, block pickers for the cluster and the storage, no
"Property is type None", a description for every field. It prints each check and exits 1 when one
fails. ``tests/e2e/test_ui.py`` runs the same checks where Chromium is installed.

Needs: ``apt-get install chromium chromium-driver`` and ``pip install selenium`` (the dev extra).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    """A running server (and the processes started for it)."""

    api: str
    ui: str
    env: dict[str, str]
    home: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 240) -> str:
        done = subprocess.run(args, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        return done.stdout


@contextmanager
def prefect_stack(port: int | None = None) -> Iterator[Stack]:
    """A Prefect server from deployments/local_server.sh on a free port (not 4200), deployed."""
    import httpx

    port = port or free_port()
    home = Path(tempfile.mkdtemp(prefix="qcos-ui-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PREFECT=str(BIN / "prefect"),
        PREFECT_HOME=str(home),
        PREFECT_PORT=str(port),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        QCOS_RESULTS_URL=(home / "results").as_uri(),
    )
    api = f"http://127.0.0.1:{port}/api"
    stack = Stack(api, f"http://127.0.0.1:{port}", {**env, "PREFECT_API_URL": api}, home)
    log = open(home / "server.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        ["bash", "deployments/local_server.sh"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    stack.procs.append(server)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError((home / "server.log").read_text(errors="replace")[-3000:])
            time.sleep(0.5)
        stack.run(str(BIN / "prefect"), "block", "register", "-m", "blocks")
        stack.run(
            str(BIN / "python"), "-c",
            "from blocks import QCOSCluster, QCOSResultStorage\n"
            "QCOSCluster.from_yaml('examples/cluster.yaml').save('lab', overwrite=True)\n"
            f"QCOSResultStorage(url={(home / 'results').as_uri()!r}).save('lab-results', overwrite=True)\n",
        )  # fmt: skip
        stack.run("bash", "deployments/create_pools.sh")
        stack.run(str(BIN / "prefect"), "--no-prompt", "deploy", "--all")
        yield stack
    finally:
        for proc in stack.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def run_once(stack: Stack) -> str:
    """One run-circuit flow run against the server (in a subprocess), so run pages have artifacts; its id."""
    out = stack.run(
        str(BIN / "python"), "-c",
        "from prefect.context import get_run_context\n"
        "from prefect import flow\n"
        "from flows import RunCircuitParameters, run_circuit\n"
        "summary = run_circuit(RunCircuitParameters(circuit='examples/nightly/ghz8.qasm', cluster='lab', "
        "storage='lab-results', shots=2048, seed=7, name='ui screenshot'), return_state=True)\n"
        "print(summary.state_details.flow_run_id)\n",
    )  # fmt: skip
    return out.strip().splitlines()[-1]


def browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1400,1800",
    ):  # fmt: skip
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='qcos-chromium-')}")
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)


def settle(driver: Any, text: str | None = None, timeout: float = 30) -> None:
    """Wait until the page shows ``text`` (or has rendered something), then a moment for the rest."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = driver.find_element("tag name", "body").text
        if (text is None and len(body) > 50) or (text is not None and text in body):
            break
        time.sleep(0.5)
    time.sleep(1.5)


def artifact_id(stack: Stack, run_id: str, key: str) -> str:
    import httpx

    found = httpx.post(
        f"{stack.api}/artifacts/filter",
        json={"artifacts": {"key": {"any_": [key]}, "flow_run_id": {"any_": [run_id]}}},
        timeout=10,
    ).json()
    return str(found[0]["id"])


def deployment_id(stack: Stack, name: str) -> str:
    import httpx

    return str(httpx.get(f"{stack.api}/deployments/name/{name}", timeout=10).json()["id"])


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


def form_checks(driver: Any, form: str, first: str, blocks: tuple[str, ...]) -> list[Check]:
    """What the issue asked of a run form, read off the rendered page."""
    text = driver.find_element("tag name", "body").text
    checks = [Check(f"{form}: no 'type None' noise", "Property is type" not in text)]
    position = {label: text.find(label) for label in ("Circuit", "Cluster", "Storage", "Shots")}
    found = {k: v for k, v in position.items() if v >= 0}
    checks.append(
        Check(
            f"{form}: '{first}' is the first field",
            bool(found) and min(found, key=lambda k: found[k]) == first,
            f"positions {found}",
        )
    )
    options = [o.get_attribute("textContent").strip() for o in driver.find_elements("css selector", "select option")]
    for block in blocks:  # a select of saved blocks offers the block's name
        checks.append(
            Check(f"{form}: a picker offers the saved {block!r} block", block in options, f"options {options}")
        )
    return checks


def capture(out: Path, port: int | None = None) -> list[Check]:
    """Take the screenshots into ``out`` and return the checks."""
    out.mkdir(parents=True, exist_ok=True)
    checks: list[Check] = []
    with prefect_stack(port) as stack:
        run_id = run_once(stack)
        driver = browser()
        try:
            pages = [
                ("dashboard", f"{stack.ui}/dashboard", None),
                ("deployments", f"{stack.ui}/deployments", "run-circuit"),
                ("run-circuit-form", f"{stack.ui}/deployments/deployment/{deployment_id(stack, 'run-circuit/run-circuit')}/run", "Circuit"),  # noqa: E501
                ("nightly-form", f"{stack.ui}/deployments/deployment/{deployment_id(stack, 'nightly-benchmarks/nightly')}/run", "Shots"),  # noqa: E501
                ("flow-run", f"{stack.ui}/runs/flow-run/{run_id}", "ui screenshot"),
                ("artifacts", f"{stack.ui}/runs/flow-run/{run_id}", "ui screenshot"),
                ("summary-artifact", f"{stack.ui}/artifacts/artifact/{artifact_id(stack, run_id, 'qcos-summary')}",
                 "strategy"),
                ("histogram-artifact",
                 f"{stack.ui}/artifacts/artifact/{artifact_id(stack, run_id, 'qcos-histogram')}", None),
                ("blocks", f"{stack.ui}/blocks", "lab"),
            ]  # fmt: skip
            for name, url, text in pages:
                driver.get(url)
                settle(driver, text)
                if name == "artifacts":  # the run page's Artifacts tab
                    tabs = driver.find_elements("xpath", "//*[@role='tab'] | //button | //a")
                    tab = next((t for t in tabs if t.text.strip().startswith("Artifacts")), None)
                    if tab is not None:
                        driver.execute_script("arguments[0].click()", tab)
                        settle(driver, "Summary")
                driver.save_screenshot(str(out / f"{name}.png"))
                body = driver.find_element("tag name", "body").text
                checks.append(Check(f"{name}: rendered", len(body) > 50 and "Failed to fetch" not in body))
                if name == "deployments":  # data came from this server's API (the UI did not call port 4200)
                    checks.append(Check("the UI talks to its own port", "run-circuit" in body and "nightly" in body))
                if name == "run-circuit-form":
                    checks += form_checks(driver, name, "Circuit", ("lab", "lab-results"))
                if name == "nightly-form":
                    checks += form_checks(driver, name, "Cluster", ("lab",))
                    checks.append(Check("nightly-form: fields have descriptions", "fresh seed every night" in body))
                if name in ("summary-artifact", "histogram-artifact"):
                    images = driver.find_elements("css selector", "img")
                    loaded = [img for img in images if driver.execute_script(
                        "return arguments[0].complete && arguments[0].naturalWidth > 0", img)]  # fmt: skip
                    checks.append(Check(f"{name}: its image renders", bool(loaded), f"{len(loaded)} of {len(images)}"))
        finally:
            driver.quit()
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "ui", help="folder for the PNGs (docs/ui)")
    parser.add_argument("--port", type=int, default=None, help="server port (default: a free one, not 4200)")
    args = parser.parse_args()
    checks = capture(args.out, args.port)
    for check in checks:
        print(f"{'PASS' if check.ok else 'FAIL'}  {check.name}{f'  ({check.detail})' if check.detail else ''}")
    print(f"screenshots in {args.out}")
    sys.exit(0 if all(c.ok for c in checks) else 1)


if __name__ == "__main__":
    main()
