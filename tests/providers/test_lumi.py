"""``lumi_amd_gpu``: LUMI-G nodes through Slurm and Dask.

Stand-ins: a ``distributed.LocalCluster`` (worker processes on this machine) injected through the
provider's ``cluster_factory`` or named by ``dask_address``, and ``sbatch``/``scancel`` scripts that
run each submitted job script on this machine, so the real ``SLURMCluster`` starts real workers.
This machine has no GPU, so LIVE statevector work must be refused by the worker, never run on a CPU.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dask_jobqueue")  # the 'lumi' extra

import dask
import psutil
from distributed import LocalCluster
from distributed.comm.core import CommClosedError
from distributed.core import Status
from pydantic import ValidationError
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister

import providers.lumi as lumi
from blocks.base import BlockNotFoundError
from blocks.lumi import LumiSlurmConfig
from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
from network.errors import (
    ClusterConfigError,
    ExecutionError,
    NodeUnavailableError,
    ProviderResultError,
    ProviderUnavailableError,
)
from network.node_providers import ClusterBuilder, QVMMode, available_providers
from providers.lumi import (
    EMULATES,
    ClusterRequest,
    LumiAMDGPUProvider,
    blocking_qubits,
    loopback_cluster,
    statevector_qubits,
)
from tests.stats import assert_matches

ACCOUNT = "project_465000123"


def _bell() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def _uniform(n: int) -> QuantumCircuit:
    qc = QuantumCircuit(n)
    qc.h(range(n))
    qc.measure_all()
    return qc


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[LocalCluster]:
    """One worker process offering a whole node's GCDs, as a LUMI-G worker does."""
    cluster = loopback_cluster(n_workers=1, processes=True, threads_per_worker=1, resources={"GCD": 8})
    yield cluster
    cluster.close()


@pytest.fixture
def providers_to_close() -> Iterator[list[LumiAMDGPUProvider]]:
    made: list[LumiAMDGPUProvider] = []
    yield made
    for provider in made:
        provider.close()


@pytest.fixture
def emulated(dask_cluster: LocalCluster, providers_to_close: list[LumiAMDGPUProvider]) -> Any:
    """A provider whose node groups run on the module's LocalCluster; records each cluster request."""
    requests: list[ClusterRequest] = []

    def factory(request: ClusterRequest) -> str:
        requests.append(request)
        return str(dask_cluster.scheduler_address)

    provider = LumiAMDGPUProvider(cluster_factory=factory)
    providers_to_close.append(provider)
    provider.requests = requests  # type: ignore[attr-defined]
    return provider


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``sbatch``/``scancel`` on PATH that run each job script here, in its own process group."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    state = tmp_path / "slurm"
    state.mkdir()
    scripts = {
        "sbatch": """\
            #!/bin/bash
            dir="$QCOS_FAKE_SLURM"
            if [ "$1" = "--test-only" ]; then
              echo "test-only" >> "$dir/calls"
              if grep -q '^#SBATCH -A bad-account' "$2"; then
                echo "sbatch: error: Batch job submission failed: Invalid account or account/partition" \\
                  "combination specified" >&2
                exit 1
              fi
              echo "sbatch: Job 4242 to start at now using 56 processors on nodes nid005000" >&2
              exit 0
            fi
            n=$(ls "$dir" | grep -c '^job-.*\\.sh$')
            cp "$1" "$dir/job-$n.sh"
            setsid bash "$dir/job-$n.sh" > "$dir/job-$n.log" 2>&1 < /dev/null &
            echo "submit $!" >> "$dir/calls"
            echo "Submitted batch job $!"
            """,
        "scancel": """\
            #!/bin/bash
            echo "cancel $1" >> "$QCOS_FAKE_SLURM/calls"
            kill -TERM -- "-$1" 2> /dev/null || true
            """,
    }
    for name, text in scripts.items():
        path = bin_dir / name
        path.write_text(textwrap.dedent(text))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("QCOS_FAKE_SLURM", str(state))
    return state


def _slurm(tmp_path: Path, **fields: Any) -> dict[str, Any]:
    """Inline block fields for jobs that start on this machine (no modules, this Python)."""
    return {
        "account": ACCOUNT,
        "python": sys.executable,
        "job_script_prologue": ["export QCOS_LUMI_PROLOGUE=1"],
        "log_directory": str(tmp_path / "slurm-logs"),
        "death_timeout": 30,
        **fields,
    }


# -- nodes ----------------------------------------------------------------------------------------


def test_nodes_hold_what_the_gcds_hbm_holds() -> None:
    provider = LumiAMDGPUProvider()
    node = provider.build_nodes(n_nodes=2)[0]
    # 8 GCDs x 64 GiB = 2**39 bytes = 2**35 complex128 amplitudes; one qubit of headroom
    assert (node.max_qubits, node.device, node.exact, node.method) == (34, "GPU", True, "statevector")
    assert node.work_pool == "lumi" and node.options["gcds"] == 8 and node.options["group_nodes"] == 2
    assert node.options["blocking_enable"] is True and node.options["blocking_qubits"] == blocking_qubits() == 29
    assert provider.build_nodes(precision="single")[0].max_qubits == statevector_qubits(8, "single") == 35
    one_gcd = provider.build_nodes(gcds=1)[0]
    assert one_gcd.max_qubits == 31 and "blocking_enable" not in one_gcd.options
    mps = provider.build_nodes(method="matrix_product_state")[0]
    assert (mps.max_qubits, mps.exact, mps.device) == (1000, False, "GPU")
    hosts = {n.host for n in provider.build_nodes(n_nodes=3)}
    assert len(hosts) == 3  # separate machines: the planner does not make them share cores


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gcds": 9}, "gcds must be 1 to 8"),
        ({"method": "density_matrix"}, "unknown method 'density_matrix'"),
        ({"precision": "half"}, "precision must be 'double' or 'single'"),
        ({"max_qubits": 35}, "exceeds what 8 GCD"),
        ({"fusion": True}, "unknown option"),
        ({"dask_address": "localhost"}, "dask_address must be a scheduler address"),
        ({"slurm": {"account": ACCOUNT, "time_limit": "one hour"}}, "invalid slurm settings"),
        ({"slurm": 3}, "slurm must name"),
    ],
)
def test_bad_node_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ClusterConfigError, match=message):
        LumiAMDGPUProvider().build_nodes(**kwargs)


def test_missing_dask_gives_the_install_hint() -> None:
    class Missing(LumiAMDGPUProvider):
        requires = ("no_such_dask_module_xyz",)

    with pytest.raises(ProviderUnavailableError, match=r"pip install 'qcos\[lumi\]'"):
        Missing()


@pytest.mark.skipif("lumi_amd_gpu" not in available_providers(), reason="entry point not installed yet")
def test_cluster_file_names_the_provider() -> None:
    registry = ClusterBuilder.from_yaml(
        f"nodes:\n  - provider: lumi_amd_gpu\n    n_nodes: 2\n    slurm: {{account: {ACCOUNT}}}\n"
    ).build()
    assert registry.node("lumi_amd_gpu-1").options["slurm"] == {"account": ACCOUNT}


# -- job scripts ----------------------------------------------------------------------------------


def test_job_script_from_the_block(tmp_path: Path) -> None:
    from dask_jobqueue import SLURMCluster

    block = LumiSlurmConfig(
        account=ACCOUNT,
        nodes=2,
        time_limit="02:00:00",
        job_script_prologue=["module load LUMI/24.03 partition/G", "source /project/qcos/bin/activate"],
        python="/project/qcos/bin/python",
        local_directory="/tmp/qcos-dask",
        log_directory=str(tmp_path / "logs"),
        extra_directives=["--qos=normal"],
    )
    kwargs = block.cluster_kwargs()
    assert kwargs["n_workers"] == 2
    assert kwargs["scheduler_options"] == {"dashboard_address": ":0"}  # login nodes are shared: a free port
    cluster = SLURMCluster(**{**kwargs, "n_workers": 0})
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    lines = script.splitlines()
    for directive in (
        f"-A {ACCOUNT}",
        "-p standard-g",
        "-t 02:00:00",
        "-n 1",
        "--nodes=1",
        "--gpus-per-node=8",
        "--cpus-per-task=56",
        "--mem=480G",
        "--qos=normal",
        "-J qcos-lumi",
        f"-o {tmp_path / 'logs'}/qcos-lumi-%J.out",
    ):
        assert f"#SBATCH {directive}" in lines, directive
    worker = next(i for i, line in enumerate(lines) if "distributed.cli.dask_worker" in line)
    assert lines.index("module load LUMI/24.03 partition/G") < lines.index("source /project/qcos/bin/activate") < worker
    command = lines[worker]
    assert command.startswith("/project/qcos/bin/python -m distributed.cli.dask_worker tcp://")
    for part in ("--nthreads 56", "--memory-limit 480.00GiB", "--death-timeout 120", "--resources GCD=8"):
        assert part in command, part
    assert "--local-directory /tmp/qcos-dask" in command


def test_block_fields_are_checked_and_a_node_group_sets_jobs_and_gcds() -> None:
    smaller = LumiSlurmConfig(account=ACCOUNT, partition="small-g").cluster_kwargs(jobs=3, gcds=4)
    assert smaller["n_workers"] == 3 and smaller["queue"] == "small-g"
    assert "--gpus-per-node=4" in smaller["job_extra_directives"]
    assert smaller["worker_extra_args"] == ["--resources", "GCD=4"]
    assert "python" not in smaller  # the submitting interpreter by default
    cpu_only = LumiSlurmConfig(account=ACCOUNT, partition="standard", gcds_per_node=0).cluster_kwargs()
    assert cpu_only["job_extra_directives"] == ["--nodes=1"] and cpu_only["worker_extra_args"] == []
    for fields in (
        {"time_limit": "1 hour"},
        {"memory": "lots"},
        {"gcds_per_node": 9},
        {"account": "my project"},
        {"extra_directives": ["#SBATCH --qos=x"]},
    ):
        with pytest.raises(ValidationError):
            LumiSlurmConfig(**{"account": ACCOUNT, **fields})


# -- EMULATED -------------------------------------------------------------------------------------


def test_emulated_bell_pair_runs_on_a_dask_worker_process(emulated: LumiAMDGPUProvider) -> None:
    registry = ClusterBuilder().add(emulated, n_nodes=2).build()
    result = DistributedQVM(registry, shots=4000).run(VirtualCircuitSpec(circuit_object=_bell(), seed=5))
    assert set(result.counts) <= {"00", "11"}
    assert_matches(result.counts, {"00": 0.5, "11": 0.5})
    shard = result.shard_results[0]
    assert shard.emulated and shard.device == "CPU" and shard.extra["emulates"] == EMULATES
    assert any(EMULATES in note for note in result.notes)
    request = emulated.requests[0]  # type: ignore[attr-defined]
    assert (request.mode, request.slurm, request.gcds, request.jobs) == (QVMMode.EMULATED, None, 8, 2)


def test_batches_are_reproducible_circuit_by_circuit(emulated: LumiAMDGPUProvider) -> None:
    node = emulated.prepare(emulated.build_nodes()[0], QVMMode.EMULATED)
    circuits = [_bell(), _uniform(4), _uniform(3)]
    shots = [500, 900, 700]
    first = emulated.execute_batch(circuits, shots, node, seeds=[11, 12, 13])
    assert set(first[0]) <= {"00", "11"} and sum(first[0].values()) == 500
    assert len(first[1]) > 8 and sum(first[1].values()) == 900
    assert emulated.execute_batch(circuits, shots, node, seeds=[11, 12, 13]) == first
    # a circuit's counts depend on its own seed only, not on the batch around it
    assert emulated.execute(circuits[1], 900, node, seed=12) == first[1]
    assert emulated.execute(circuits[1], 900, node, seed=99) != first[1]
    assert len(emulated.requests) == 1  # type: ignore[attr-defined]  # the group's cluster is opened once


def test_counts_follow_qiskit_bit_order(emulated: LumiAMDGPUProvider) -> None:
    q, a, b = QuantumRegister(3), ClassicalRegister(2, "a"), ClassicalRegister(1, "b")
    qc = QuantumCircuit(q, a, b)
    qc.x(0)
    qc.x(2)
    qc.measure(0, a[0])
    qc.measure(1, a[1])
    qc.measure(2, b[0])
    node = emulated.prepare(emulated.build_nodes()[0], QVMMode.EMULATED)
    assert emulated.execute(qc, 50, node, seed=1) == {"101": 50}


def test_malformed_counts_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(circuit: QuantumCircuit, shots: int, seed: int | None, *, settings: dict[str, Any]) -> dict[str, int]:
        return {"0": shots}

    monkeypatch.setattr(lumi, "run_on_worker", broken)
    provider = LumiAMDGPUProvider()  # the default: an in-process LocalCluster
    try:
        node = provider.prepare(provider.build_nodes()[0], QVMMode.EMULATED)
        with pytest.raises(ProviderResultError, match=r"lumi_amd_gpu-0.*1 bits; the circuit has 2"):
            provider.execute(_bell(), 10, node)
    finally:
        provider.close()


def _listening() -> set[tuple[str, int]]:
    return {(c.laddr.ip, c.laddr.port) for c in psutil.Process().net_connections("tcp") if c.status == "LISTEN"}


@pytest.mark.parametrize("processes", [False, True])
def test_emulated_clusters_listen_on_loopback_alone(processes: bool) -> None:
    before = _listening()
    with socket.create_server(("127.0.0.1", 0)) as taken:  # whatever else holds a port, no warning
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            cluster = loopback_cluster(n_workers=1, processes=processes, threads_per_worker=1)
        try:
            opened = _listening() - before - {taken.getsockname()[:2]}
        finally:
            cluster.close()
    if processes:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    assert opened and {ip for ip, _ in opened} == {"127.0.0.1"}, opened
    assert 8787 not in {port for _, port in opened}


def test_a_group_cluster_is_shared_and_closed_with_its_last_user() -> None:
    made: list[LocalCluster] = []

    def factory(request: ClusterRequest) -> LocalCluster:
        made.append(loopback_cluster(n_workers=1, processes=False, resources={"GCD": 8}))
        return made[-1]

    # the flows rebuild the registry (and so the provider) in every task: they must share the cluster
    first, second = LumiAMDGPUProvider(cluster_factory=factory), LumiAMDGPUProvider(cluster_factory=factory)
    nodes = [p.prepare(p.build_nodes()[0], QVMMode.EMULATED) for p in (first, second)]
    assert first.execute(_bell(), 100, nodes[0], seed=3) == second.execute(_bell(), 100, nodes[1], seed=3)
    assert len(made) == 1
    first.close()
    assert made[0].status is Status.running
    second.close()
    assert made[0].status is Status.closed


# -- LIVE -----------------------------------------------------------------------------------------


def test_live_without_slurm_is_refused_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulated: LumiAMDGPUProvider
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    registry = ClusterBuilder().add(emulated, slurm={"account": ACCOUNT}).build()
    with pytest.raises(NodeUnavailableError, match="'sbatch' is not on this machine's PATH"):
        DistributedQVM(registry, mode=QVMMode.LIVE).run(VirtualCircuitSpec(circuit_object=_bell(), seed=1))
    assert emulated.requests == []  # type: ignore[attr-defined]


def test_live_without_slurm_settings_is_refused(fake_slurm: Path) -> None:
    provider = LumiAMDGPUProvider()
    with pytest.raises(NodeUnavailableError, match="has no Slurm settings"):
        provider.prepare(provider.build_nodes()[0], QVMMode.LIVE)


def test_dry_run_contacts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulated: LumiAMDGPUProvider
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, and no Prefect API for the block either
    registry = ClusterBuilder().add(emulated, n_nodes=2, slurm="no-such-block").build()
    result = DistributedQVM(registry, mode=QVMMode.DRY_RUN).run(VirtualCircuitSpec(circuit_object=_bell(), seed=1))
    assert result.counts == {} and result.plan.shards[0].node_id.startswith("lumi_amd_gpu-")
    assert emulated.requests == []  # type: ignore[attr-defined]


def test_live_on_a_dask_scheduler_refuses_statevector_without_a_gpu_and_runs_mps(
    dask_cluster: LocalCluster, providers_to_close: list[LumiAMDGPUProvider]
) -> None:
    provider = LumiAMDGPUProvider()
    providers_to_close.append(provider)
    address = dask_cluster.scheduler_address
    statevector = ClusterBuilder().add(provider, dask_address=address).build()
    with pytest.raises(NodeUnavailableError, match=r"has no GPU: its Aer reports only CPU.*nothing ran on the CPU"):
        DistributedQVM(statevector, mode=QVMMode.LIVE).run(VirtualCircuitSpec(circuit_object=_bell(), seed=1))
    # Aer's MPS has no GPU implementation: on LUMI it runs on the node's CPUs, by design
    mps = ClusterBuilder().add(provider, method="matrix_product_state", dask_address=address).build()
    result = DistributedQVM(mps, mode=QVMMode.LIVE, shots=2000).run(VirtualCircuitSpec(circuit_object=_bell(), seed=2))
    assert set(result.counts) <= {"00", "11"} and not result.emulated and result.approximate
    assert_matches(result.counts, {"00": 0.5, "11": 0.5})


def test_workers_without_the_gcd_resource_fail_at_once() -> None:
    plain = loopback_cluster(n_workers=1, processes=False)
    provider = LumiAMDGPUProvider()
    try:
        node = provider.prepare(provider.build_nodes(dask_address=plain.scheduler_address)[0], QVMMode.LIVE)
        with pytest.raises(NodeUnavailableError, match="resource GCD=8.*offer at most GCD=0"):
            provider.execute(_bell(), 10, node)
    finally:
        provider.close()
        plain.close()


def test_live_through_slurm_jobs_that_start_real_workers(
    fake_slurm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lumi, "_REFRESH_S", 0.5)
    # Dask waits this long for a lost worker to come back before its job counts as gone (default 15 s)
    monkeypatch.setitem(dask.config.config["distributed"]["deploy"], "lost-worker-timeout", "0.5s")
    provider = LumiAMDGPUProvider()
    spec = VirtualCircuitSpec(circuit_object=_bell(), seed=4)
    try:
        mps = ClusterBuilder().add(provider, name="mps", method="matrix_product_state", slurm=_slurm(tmp_path))
        qvm = DistributedQVM(mps.build(), mode=QVMMode.LIVE, shots=1000)
        result = qvm.run(spec)
        assert set(result.counts) <= {"00", "11"} and sum(result.counts.values()) == 1000
        calls = (fake_slurm / "calls").read_text().split("\n")
        assert calls[0] == "test-only" and calls[1].startswith("submit ")  # checked before anything is queued
        script = (fake_slurm / "job-0.sh").read_text()
        assert f"#SBATCH -A {ACCOUNT}" in script and "#SBATCH --gpus-per-node=8" in script
        assert "export QCOS_LUMI_PROLOGUE=1" in script and "--resources GCD=8" in script
        # the job reaches its time limit: the next batch waits for a replacement, submitted by the provider
        os.killpg(int(calls[1].split()[1]), signal.SIGTERM)
        assert qvm.run(spec).counts == result.counts
        assert len(_submitted(fake_slurm)) == 2
        gpu = ClusterBuilder().add(provider, name="sv", slurm=_slurm(tmp_path)).build()
        with pytest.raises(NodeUnavailableError, match="has no GPU"):
            DistributedQVM(gpu, mode=QVMMode.LIVE).run(spec)
    finally:
        provider.close()
    # closing the provider cancelled every job: no process of any of them is left
    for pid in _submitted(fake_slurm):
        deadline = time.monotonic() + 10
        while _group_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _group_alive(pid), f"job {pid} is still running"


def _submitted(state: Path) -> list[int]:
    return [int(line.split()[1]) for line in (state / "calls").read_text().splitlines() if line.startswith("submit ")]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_job_slurm_rejects_is_reported_and_never_queued(fake_slurm: Path, tmp_path: Path) -> None:
    provider = LumiAMDGPUProvider()
    try:
        registry = ClusterBuilder().add(provider, slurm=_slurm(tmp_path, account="bad-account")).build()
        with pytest.raises(NodeUnavailableError, match="Slurm rejects the LUMI worker job.*Invalid account"):
            DistributedQVM(registry, mode=QVMMode.LIVE).run(VirtualCircuitSpec(circuit_object=_bell(), seed=1))
    finally:
        provider.close()
    assert (fake_slurm / "calls").read_text().split() == ["test-only"]


@pytest.mark.usefixtures("prefect_harness")
def test_live_with_a_saved_block(fake_slurm: Path) -> None:
    LumiSlurmConfig(account=ACCOUNT, nodes=4).save("lumi-test", overwrite=True)
    provider = LumiAMDGPUProvider()
    node = provider.build_nodes(slurm="lumi-test")[0]
    assert provider.prepare(node, QVMMode.LIVE) is node
    missing = provider.build_nodes(slurm="no-such-lumi-block")[0]
    with pytest.raises(BlockNotFoundError, match="no-such-lumi-block"):
        provider.prepare(missing, QVMMode.LIVE)


def test_transient_and_permanent_errors() -> None:
    from distributed.scheduler import KilledWorker

    provider = LumiAMDGPUProvider()
    assert provider.is_transient(CommClosedError("in <TCP ...>: Stream is closed"))
    assert provider.is_transient(OSError("Timed out trying to connect to tcp://10.0.0.1:8786 after 30 s"))
    wrapped = ExecutionError("shard 0 failed")
    wrapped.__cause__ = TimeoutError()
    assert provider.is_transient(wrapped)
    assert not provider.is_transient(KilledWorker("qcos-x", None, 3))
    assert not provider.is_transient(NodeUnavailableError("no GPU"))
    assert not provider.is_transient(OSError("No such file"))
