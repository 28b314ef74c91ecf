"""The documentation site (docs/site): it builds with warnings as errors, and every example on it runs.

How the examples are found, in every Markdown page of docs/site (and the files they ``{include}``):

* a ```` ```python ```` fence is executed, in order, in one fresh namespace per page (an example may
  build on the ones above it), from the repository root, offline, with ``$QCOS_RESULTS_URL`` pointing
  at a temporary folder; a fence right after a MyST comment ``% not executed: <reason>`` is skipped,
  and the page must say why in its text too;
* a ```` ```yaml ```` fence is parsed, and one with a top-level ``nodes:`` list is built with
  ``ClusterBuilder.from_yaml(text).build()``; ```` ```json ```` and ```` ```toml ```` fences are parsed;
* ```` ```bash ```` and ```` ```text ```` fences are shown, not run;
* any other fence language fails the test, so that an example cannot escape by being spelled
  ```` ```py ````.

The docstrings' ``>>>`` examples of every module in the API reference are run as doctests.

The site needs the ``docs`` extra (``pip install -e '.[docs]'``; ``make install`` includes it).
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "docs" / "site"
BUILD_TIMEOUT = 300  # seconds; about 25 s on the 2-core development machine

SHOWN_ONLY = {"bash", "text"}
DIRECTIVES = {"{toctree}", "{include}", "{note}"}
CHECKED = {"python", "yaml", "json", "toml"}
_OPEN = re.compile(r"^(?P<ticks>`{3,})(?P<info>[^`\s]*)\s*(?P<arg>.*)$")
_NOT_EXECUTED = re.compile(r"^%\s*not executed:\s*(?P<reason>\S.*)$")


@dataclass(frozen=True)
class Fence:
    """One fenced block of a page."""

    path: Path
    line: int  # 1-based line of the opening fence
    info: str
    arg: str
    body: str
    skip_reason: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def fences(path: Path) -> Iterator[Fence]:
    """The fences of a Markdown page, then those of the files it includes, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = _OPEN.match(lines[i])
        if match is None:
            i += 1
            continue
        ticks = match["ticks"]
        end = next(
            (j for j in range(i + 1, len(lines)) if lines[j].startswith(ticks) and not lines[j].strip("`").strip()),
            None,
        )
        assert end is not None, f"{path}:{i + 1}: fence never closed"
        previous = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        skip = _NOT_EXECUTED.match(previous.strip())
        fence = Fence(
            path,
            i + 1,
            match["info"],
            match["arg"].strip(),
            "\n".join(lines[i + 1 : end]) + "\n",
            skip["reason"] if skip else None,
        )
        yield fence
        if fence.info == "{include}":
            yield from fences((path.parent / fence.arg).resolve())
        i = end + 1


PAGES = sorted(p for p in SITE.rglob("*.md") if "_build" not in p.parts)
ALL_FENCES = [f for page in PAGES for f in fences(page)]


def page_id(page: Path) -> str:
    return str(page.relative_to(SITE).with_suffix(""))


def python_examples(page: Path) -> list[Fence]:
    return [f for f in fences(page) if f.info == "python" and f.skip_reason is None]


EXAMPLE_PAGES = [p for p in PAGES if python_examples(p)]


# -- the build --------------------------------------------------------------------------------------


DOCS_EXTRA = ("sphinx", "myst_parser", "qiskit_sphinx_theme")


@dataclass
class Build:
    process: subprocess.Popen[bytes]
    html: Path
    log: Path  # sphinx's output (a file, not a pipe: the build never waits on a full pipe)


@pytest.fixture(scope="module")
def sphinx_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Build]:
    """``sphinx-build -W`` in a subprocess, started early so that the examples run while it works."""
    for module in DOCS_EXTRA:
        pytest.importorskip(module, reason="the docs extra is not installed: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("docs-build")
    env = {**os.environ, "QCOS_RESULTS_URL": (out / "results").as_uri(), "MPLBACKEND": "Agg"}
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", "-E",
               "-d", str(out / "doctrees"), str(SITE), str(out / "html")]  # fmt: skip
    log = out / "sphinx.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    yield Build(process, out / "html", log)
    if process.poll() is None:  # the build test was deselected or failed early
        process.kill()
        process.wait()


@pytest.fixture(scope="module", autouse=True)
def _start_the_build_first(request: pytest.FixtureRequest) -> None:
    """Start the build with the module's first test when the build test is selected (2 cores: the
    build and the examples then take about the time of the build alone)."""
    selected = any(item.name.startswith("test_site_builds") for item in request.session.items)
    if selected and all(importlib.util.find_spec(m) is not None for m in DOCS_EXTRA):
        request.getfixturevalue("sphinx_build")


def test_site_builds_with_warnings_as_errors(sphinx_build: Build) -> None:
    process = sphinx_build.process
    try:
        process.wait(timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"sphinx-build took over {BUILD_TIMEOUT} s:\n{sphinx_build.log.read_text(errors='replace')}")
    assert process.returncode == 0, f"sphinx-build -W failed:\n{sphinx_build.log.read_text(errors='replace')}"
    for page in PAGES:
        assert (sphinx_build.html / page.relative_to(SITE).with_suffix(".html")).is_file(), page
    api = (sphinx_build.html / "api" / "network.distributed_qvm.html").read_text(encoding="utf-8")
    assert 'id="network.distributed_qvm.DistributedQVM.run"' in api  # autodoc really ran


# -- the examples -----------------------------------------------------------------------------------


def test_every_fence_is_known_and_every_skip_has_a_reason() -> None:
    languages = CHECKED | SHOWN_ONLY | DIRECTIVES
    unknown = [f"{f.where}: ```{f.info}" for f in ALL_FENCES if f.info not in languages]
    assert not unknown, f"fences in a language the test neither runs nor knows: {unknown}"
    misplaced = [f.where for f in ALL_FENCES if f.skip_reason is not None and f.info != "python"]
    assert not misplaced, f"'% not executed' marks only python fences: {misplaced}"
    indented = [
        f"{page.relative_to(ROOT)}:{n}"
        for page in PAGES
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        if re.match(r"^\s+`{3,}\w", line)
    ]
    assert not indented, f"indented fences would escape this test: {indented}"
    executed = [f for f in ALL_FENCES if f.info == "python" and f.skip_reason is None]
    assert len(executed) >= 40, f"only {len(executed)} executed examples were found"


@pytest.fixture()
def docs_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run like a reader at the repository root, offline, with a store of its own."""
    import fsspec

    monkeypatch.chdir(ROOT)
    saved = dict(os.environ)
    os.environ["QCOS_RESULTS_URL"] = (tmp_path / "results").as_uri()
    os.environ["MPLBACKEND"] = "Agg"
    local = "127.0.0.1,localhost"
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), local]))
    memory = fsspec.filesystem("memory")
    if memory.exists("/qcos-docs"):
        memory.rm("/qcos-docs", recursive=True)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if memory.exists("/qcos-docs"):
            memory.rm("/qcos-docs", recursive=True)


@pytest.mark.parametrize("page", EXAMPLE_PAGES, ids=page_id)
@pytest.mark.usefixtures("docs_environment")
def test_python_examples_run(page: Path) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_{page_id(page).replace('/', '_').replace('-', '_')}"}
    for fence in python_examples(page):
        code = compile(fence.body, f"{fence.where} (example)", "exec")
        started = time.monotonic()
        try:
            exec(code, namespace)
        except Exception as exc:
            raise AssertionError(f"the example at {fence.where} failed: {type(exc).__name__}: {exc}") from exc
        seconds = time.monotonic() - started
        assert seconds < 30, f"the example at {fence.where} took {seconds:.1f} s; keep examples small"


@pytest.mark.parametrize("fence", [f for f in ALL_FENCES if f.info == "yaml"], ids=lambda f: f.where)
def test_yaml_examples_parse_and_clusters_build(fence: Fence) -> None:
    from network.node_providers import ClusterBuilder

    data = yaml.safe_load(fence.body)
    assert isinstance(data, dict), fence.where
    if "nodes" in data:
        registry = ClusterBuilder.from_yaml(fence.body).build()
        assert registry.nodes, fence.where


@pytest.mark.parametrize("fence", [f for f in ALL_FENCES if f.info in ("json", "toml")], ids=lambda f: f.where)
def test_json_and_toml_examples_parse(fence: Fence) -> None:
    if fence.info == "json":
        json.loads(fence.body)
    else:
        tomllib.loads(fence.body)


def documented_modules() -> list[str]:
    return sorted(p.stem for p in (SITE / "api").glob("*.rst"))


def test_docstring_examples_run() -> None:
    """The ``>>>`` examples of the documented modules' docstrings (they render in the API reference)."""
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    examples = 0
    for name in documented_modules():
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            examples += len(test.examples)
            runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, f"{failed} of {attempted} docstring examples failed (output above)"
    assert examples >= 1


def test_every_api_page_is_a_module_and_listed() -> None:
    index = (SITE / "api" / "index.md").read_text(encoding="utf-8")
    for name in documented_modules():
        assert importlib.util.find_spec(name) is not None, name
        assert re.search(rf"^{re.escape(name)}$", index, re.M), f"api/{name}.rst is in no toctree of api/index.md"
