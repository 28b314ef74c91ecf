"""Task runners for the flows: threads by default, Dask workers in other processes, LUMI through Slurm."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("prefect_dask")  # the 'dask' extra

from distributed import Client, get_task_stream
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from blocks.base import BlockNotFoundError
from blocks.lumi import LumiSlurmConfig
from flows import RunCircuitParameters
from flows.dask_runner import run_circuit_with_runner, task_runner_for
from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
from network.errors import NodeUnavailableError, SpecError
from network.node_providers import ClusterBuilder
from network.storage import ResultStore
from providers.lumi import loopback_cluster

REPO = Path(__file__).resolve().parents[2]
BLOCKS_QASM = (REPO / "examples" / "nightly" / "blocks_4x6.qasm").read_text()

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_runner_specs() -> None:
    assert isinstance(task_runner_for(None), ThreadPoolTaskRunner)
    assert isinstance(task_runner_for(""), ThreadPoolTaskRunner)
    local = task_runner_for("local")
    assert isinstance(local, DaskTaskRunner) and local.cluster_class == "distributed.LocalCluster"
    assert local.cluster_kwargs == {"processes": True, "threads_per_worker": 1}
    assert task_runner_for("local:3").cluster_kwargs["n_workers"] == 3
    remote = task_runner_for("tcp://10.0.0.5:8786")
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://10.0.0.5:8786"
    for bad in ("local:0", "local:x", "lumi:", "threads"):
        with pytest.raises(SpecError, match="(?i)task runner"):
            task_runner_for(bad)


def test_lumi_runner_starts_slurm_jobs_from_the_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    block = LumiSlurmConfig(account="project_465000123", nodes=3, time_limit="00:30:00")
    block.save("lumi-runner-test", overwrite=True)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NodeUnavailableError, match="'sbatch' is not on this machine's PATH"):
        task_runner_for("lumi:lumi-runner-test")
    sbatch = tmp_path / "sbatch"
    sbatch.write_text("#!/bin/sh\nexit 1\n")
    sbatch.chmod(0o755)
    runner = task_runner_for("lumi:lumi-runner-test")
    assert isinstance(runner, DaskTaskRunner) and runner.cluster_class == "dask_jobqueue.SLURMCluster"
    assert runner.cluster_kwargs == block.cluster_kwargs()
    assert runner.cluster_kwargs["n_workers"] == 3 and runner.cluster_kwargs["walltime"] == "00:30:00"
    with pytest.raises(BlockNotFoundError, match="no-such-lumi-block"):
        task_runner_for("lumi:no-such-lumi-block")


def test_run_circuit_tasks_run_in_dask_worker_processes(tmp_path: Path) -> None:
    cluster_file = tmp_path / "cluster.yaml"
    # one block per node: a batch on the CPU host, and one unit per cuStateVec node (emulated
    # where no GPU is): three execute tasks
    cluster_file.write_text(
        "nodes:\n"
        "  - {provider: local_cpu, name: a, n_nodes: 2, max_qubits: 6, host: a}\n"
        "  - {provider: local_gpu_cuquantum, name: b, n_nodes: 2, max_qubits: 6, host: b}\n"
    )
    store_url = (tmp_path / "results").as_uri()
    params = RunCircuitParameters(
        circuit=BLOCKS_QASM, shots=2000, seed=33, cluster=str(cluster_file), storage=store_url
    )
    with (
        loopback_cluster(n_workers=2, processes=True, threads_per_worker=1) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        workers = client.run(os.getpid)
        with get_task_stream(client) as stream:
            summary = run_circuit_with_runner(params, cluster.scheduler_address)
    assert os.getpid() not in workers.values()
    # the submitted tasks (one per work unit) ran on the worker processes
    assert [r["key"].split("-")[0] for r in stream.data] == ["execute_unit_task"] * 3
    assert {r["worker"] for r in stream.data} <= set(workers)
    direct = DistributedQVM(ClusterBuilder.from_yaml(cluster_file).build(), shots=2000).run(
        VirtualCircuitSpec(qasm=BLOCKS_QASM, seed=33)
    )
    assert summary["run_key"] == direct.run_key and summary["strategy"] == "partition"
    stored = ResultStore(store_url).read_result(summary["run_key"])
    assert stored.counts == direct.counts
    assert {r.node_id[0] for r in stored.shard_results} == {"a", "b"}
