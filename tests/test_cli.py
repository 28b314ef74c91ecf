"""The ``qcos`` command line, through click's CliRunner (and once through the installed script)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner, Result

from network.cli import abbreviate_key, cli, main
from network.execution import NodeExecutor
from network.results import QVMResult

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
BELL = EXAMPLES / "bell_pair.qasm"
BLOCKS = EXAMPLES / "blocks160.qasm"
CLUSTER = EXAMPLES / "cluster.yaml"


def invoke(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def run_json(*args: object) -> dict[str, Any]:
    result = invoke("run", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_clean_error(result: Result, *fragments: str) -> None:
    """Exit 2, one ``error:`` line on stderr, nothing on stdout, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def load_make_blocks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_blocks", EXAMPLES / "make_blocks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_execution(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything reaches a node."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a shard was executed")

    for name in ("run_plan", "run", "run_batch"):
        monkeypatch.setattr(NodeExecutor, name, refuse)


# -- providers ----------------------------------------------------------------------------------


def test_providers_lists_builtins() -> None:
    result = invoke("providers")
    assert result.exit_code == 0, result.output
    for key in ("local_cpu", "local_gpu_aer", "local_gpu_mps"):
        assert key in result.stdout
    assert "OK" in result.stdout


def test_providers_json() -> None:
    result = invoke("providers", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert {"local_cpu", "local_gpu_aer", "local_gpu_mps", "local_gpu_cuquantum"} <= set(rows)
    assert rows["local_cpu"]["ok"] and rows["local_cpu"]["description"]
    assert rows["local_cpu"]["live"] is None and rows["local_gpu_mps"]["live"] is None
    # GPU providers say whether LIVE can run here
    from providers.aer import aer_devices
    from providers.cuquantum import cuquantum_status

    assert (rows["local_gpu_aer"]["live"] is None) == ("GPU" in aer_devices())
    assert (rows["local_gpu_cuquantum"]["live"] is None) == (cuquantum_status() is None)
    if cuquantum_status() is not None:
        assert "EMULATED runs on the CPU" in rows["local_gpu_cuquantum"]["live"]


# -- plan ---------------------------------------------------------------------------------------


def test_plan_blocks_partitions_into_eight_shards(no_execution: None) -> None:
    result = invoke("plan", BLOCKS, "--cluster", CLUSTER, "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["strategy"] == "partition"
    assert plan["n_qubits"] == 160
    assert len(plan["shards"]) == 8
    assert all(len(s["qubits"]) == 20 and len(s["clbits"]) == 20 for s in plan["shards"])
    assert sorted(q for s in plan["shards"] for q in s["qubits"]) == list(range(160))
    assert {s["node_id"] for s in plan["shards"]} == {f"local_cpu-{i}" for i in range(8)}
    assert "counts" not in plan


def test_plan_human_readable(no_execution: None) -> None:
    result = invoke("plan", BLOCKS, "--cluster", CLUSTER, "--seed", "3")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "partition" in out and "8 shards" in out and "seed 3" in out
    assert "local_cpu-7" in out and "Estimate" in out


# -- run ----------------------------------------------------------------------------------------


def test_run_bell_pair_counts() -> None:
    data = run_json(BELL, "--shots", 4000, "--seed", 1)
    counts = data["counts"]
    assert set(counts) <= {"00", "11"}
    assert sum(counts.values()) == 4000
    bound = 6 * math.sqrt(4000 * 0.25)
    for key in ("00", "11"):
        assert abs(counts.get(key, 0) - 2000) < bound, counts
    assert data["seed"] == 1 and data["shots"] == 4000 and data["name"] == "bell_pair"
    assert QVMResult.from_dict(data).counts == counts


def test_run_same_seed_same_counts() -> None:
    first = run_json(BELL, "--shots", 500, "--seed", 42)
    second = run_json(BELL, "--shots", 500, "--seed", 42)
    assert first["counts"] == second["counts"]


def test_run_json_stdout_is_only_the_document() -> None:
    result = invoke("run", BELL, "--shots", 10, "--seed", 1, "--json")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1  # one line: exactly result.to_json()
    assert QVMResult.from_json(result.stdout).shots == 10


def test_run_human_readable() -> None:
    result = invoke("run", BELL, "--shots", 1000, "--seed", 1, "--top", 2)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "whole" in out  # strategy, in the plan header and the summary
    assert "Top 2 of 2 outcome(s)" in out
    lines = out.splitlines()
    assert any(" 00 " in line for line in lines) and any(" 11 " in line for line in lines)
    assert "Seed" in out and "Timings" in out and "execute" in out


def test_run_human_readable_abbreviates_wide_outcomes(tmp_path: Path) -> None:
    circuit = load_make_blocks().blocks_circuit(4, 12, 3, seed=1)
    qasm = tmp_path / "wide.qasm"
    from qiskit import qasm2

    qasm.write_text(qasm2.dumps(circuit), encoding="utf-8")
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text("nodes:\n  - provider: local_cpu\n    n_nodes: 4\n    max_qubits: 12\n", encoding="utf-8")
    result = invoke("run", qasm, "--cluster", cluster, "--shots", 50, "--seed", 2, "--top", 3)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "partition" in out and "4 shards" in out
    assert "…" in out and "key = c[47..0]" in out
    data = run_json(qasm, "--cluster", cluster, "--shots", 50, "--seed", 2)
    top_key = QVMResult.from_dict(data).most_frequent(1)[0][0]  # the first row of the table
    assert len(top_key) == 48 and top_key not in out


def test_run_dry_run_executes_nothing(no_execution: None) -> None:
    data = run_json(BLOCKS, "--cluster", CLUSTER, "--mode", "dry_run", "--seed", 1)
    assert data["counts"] == {} and data["mode"] == "dry_run" and data["strategy"] == "partition"
    result = invoke("run", BLOCKS, "--cluster", CLUSTER, "--mode", "dry_run", "--seed", 1)
    assert result.exit_code == 0, result.output
    assert "Dry run" in result.stdout and "Top" not in result.stdout


# -- errors -------------------------------------------------------------------------------------


def test_invalid_qasm_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.qasm"
    bad.write_text("OPENQASM 2.0;\nqreg q[2];\nnot_a_gate q[0];\n", encoding="utf-8")
    assert_clean_error(invoke("run", bad), "OpenQASM")
    assert_clean_error(invoke("plan", bad), "OpenQASM")


def test_zero_shots_is_a_clean_error() -> None:
    assert_clean_error(invoke("run", BELL, "--shots", 0), "shots")


def test_missing_cluster_file_is_a_clean_error(tmp_path: Path) -> None:
    assert_clean_error(invoke("run", BELL, "--cluster", tmp_path / "nope.yaml"), "nope.yaml")


def test_missing_qasm_file_is_a_clean_error(tmp_path: Path) -> None:
    assert_clean_error(invoke("run", tmp_path / "nope.qasm"), "nope.qasm", "does not exist")


@pytest.mark.parametrize(
    "args",
    [
        ("run", str(BELL), "--mode", "bogus"),
        ("run", str(BELL), "--top", "0"),
        ("run", str(BELL), "--no-such-option"),
        ("run",),
        ("no-such-command",),
    ],
)
def test_usage_errors_are_clean(args: tuple[str, ...]) -> None:
    assert_clean_error(invoke(*args))


def test_main_entry_point_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["providers", "--json"])
    assert info.value.code == 0
    assert "local_cpu" in capsys.readouterr().out


# -- helpers ------------------------------------------------------------------------------------


def test_abbreviate_key() -> None:
    key = "01" * 80
    short = abbreviate_key(key, 41)
    assert len(short) == 41 and short.startswith(key[:20]) and short.endswith(key[-20:]) and "…" in short
    assert abbreviate_key("0110", 41) == "0110"
    multi = abbreviate_key("1" * 60 + " " + "0" * 60, 41)
    assert multi.count(" ") == 1 and multi.count("…") == 2 and len(multi) <= 41


# -- the installed script -----------------------------------------------------------------------


def test_installed_script() -> None:
    script = Path(sys.executable).parent / "qcos"
    if not script.exists():
        pytest.skip("the qcos script is not installed next to this interpreter")
    ok = subprocess.run(
        [str(script), "run", str(BELL), "--shots", "100", "--seed", "3", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert sum(json.loads(ok.stdout)["counts"].values()) == 100
    bad = subprocess.run(
        [str(script), "run", str(BELL), "--shots", "0"], capture_output=True, text=True, timeout=120, check=False
    )
    assert bad.returncode == 2
    assert bad.stdout == "" and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


def test_run_persists_to_a_store(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from network.cli import cli
    from network.storage import ResultStore

    url = (tmp_path / "results").as_uri()
    runner = CliRunner()
    out = runner.invoke(cli, ["run", str(EXAMPLES / "bell_pair.qasm"), "--shots", "200", "--seed", "3", "--store", url])
    assert out.exit_code == 0, out.output
    assert "Stored" in out.output
    runs = ResultStore(url).list_runs()
    assert len(runs) == 1 and sum(ResultStore(url).read_result(runs[0]).counts.values()) == 200


def test_run_estimates_observables() -> None:
    from click.testing import CliRunner

    from network.cli import cli

    ghz = EXAMPLES / "nightly" / "ghz8.qasm"
    out = CliRunner().invoke(cli, ["run", str(ghz), "--observable", "ZZIIIIII", "--observable", "XXXXXXXX", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["observables"] == ["ZZIIIIII", "XXXXXXXX"] and data["expectation_values"] == [1.0, 1.0]
    bad = CliRunner().invoke(cli, ["run", str(ghz), "--observable", "ZZ"])
    assert bad.exit_code == 2 and "acts on 2 qubits; the circuit has 8" in bad.stderr


def test_run_cuts_a_circuit_wider_than_every_node(tmp_path: Path) -> None:
    """The README's example: GHZ-8 on a 5-qubit and a 4-qubit node, counts reconstructed from the cut."""
    from click.testing import CliRunner

    from network.cli import cli

    ghz = str(EXAMPLES / "nightly" / "ghz8.qasm")
    cluster = str(EXAMPLES / "small_nodes.yaml")
    args = ["run", ghz, "--cluster", cluster, "--seed", "1", "--shots", "4000"]
    out = CliRunner().invoke(cli, [*args, "--json", "--store", f"file://{tmp_path}"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["strategy"] == "cut" and data["reconstructed"] is True
    assert data["cut"]["sampling_overhead"] == 9.0 and sum(data["counts"].values()) == 4000
    assert data["counts"].get("00000000", 0) + data["counts"].get("11111111", 0) > 0.95 * 4000
    assert list(tmp_path.rglob("quasi_distribution.parquet"))
    human = CliRunner().invoke(cli, args)
    assert human.exit_code == 0, human.output
    assert "reconstructed from cut subexperiments" in human.output


def test_gpu_cluster_example_runs_emulated_without_a_gpu() -> None:
    from providers.aer import aer_devices
    from providers.cuquantum import cuquantum_status

    data = run_json(BELL, "--cluster", EXAMPLES / "gpu_cluster.yaml", "--seed", "3", "--shots", "2000")
    assert set(data["counts"]) == {"00", "11"} and sum(data["counts"].values()) == 2000
    if cuquantum_status() is not None and "GPU" not in aer_devices():
        assert data["emulated"] is True
