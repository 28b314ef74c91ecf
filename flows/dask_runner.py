"""Choosing the task runner the flows' tasks run in: threads here, or Dask workers elsewhere.

Every task of the flows rebuilds what it needs from plain values (:mod:`flows.tasks`), so any of
these runners can run them, in this process or in others:

* ``None`` or ``""``: Prefect's ``ThreadPoolTaskRunner`` (the flows' default).
* ``"local"`` or ``"local:<n>"``: a ``DaskTaskRunner`` on a ``distributed.LocalCluster`` of ``n``
  worker processes (default: one per core), one thread each, since Aer holds the GIL while it simulates.
* ``"tcp://host:port"`` (any ``scheme://`` address): a ``DaskTaskRunner`` on that running scheduler.
* ``"lumi:<block>"``: a ``DaskTaskRunner`` that starts ``dask_jobqueue.SLURMCluster`` with the
  ``QCOS LUMI Slurm`` block ``<block>`` (:meth:`blocks.lumi.LumiSlurmConfig.cluster_kwargs`): the tasks
  run in Dask workers on LUMI compute nodes, which must reach the Prefect API. The flow itself must
  run where ``sbatch`` is, a LUMI login node.

Example:
    ```python
    from flows.dask_runner import run_circuit_with_runner
    from flows.models import RunCircuitParameters

    run_circuit_with_runner(RunCircuitParameters(circuit="examples/blocks160.qasm"), "local:4")
    ```
"""

from __future__ import annotations

import importlib.util
import shutil
from typing import Any

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.models import RunCircuitParameters
from flows.run_circuit import run_circuit
from network.errors import NodeUnavailableError, ProviderUnavailableError, SpecError
from network.node_providers import install_hint

__all__ = ["task_runner_for", "run_circuit_with_runner"]

_FORMS = "None (threads), 'local', 'local:<workers>', a scheduler address 'tcp://host:port', or 'lumi:<block name>'"


def task_runner_for(spec: str | None) -> TaskRunner[Any]:
    """The task runner ``spec`` names (see the module docstring).

    Raises:
        SpecError: ``spec`` has none of the accepted forms.
        NodeUnavailableError: ``lumi:<block>`` where Slurm's ``sbatch`` is not on ``PATH``.
        BlockNotFoundError: ``lumi:<block>`` names no saved ``QCOS LUMI Slurm`` block.
        ProviderUnavailableError: ``prefect-dask`` (or ``dask-jobqueue`` for ``lumi:``) is not installed.
    """
    if spec is None or not spec.strip():
        return ThreadPoolTaskRunner()
    text = spec.strip()
    kind, _, rest = text.partition(":")
    if "://" in text:
        return _dask_runner(address=text)
    if kind == "local":
        cluster_kwargs: dict[str, Any] = {"processes": True, "threads_per_worker": 1}
        if rest:
            if not rest.isdigit() or int(rest) < 1:
                raise SpecError(f"Task runner {spec!r}: 'local:<workers>' takes a positive worker count.")
            cluster_kwargs["n_workers"] = int(rest)
        return _dask_runner(cluster_class="distributed.LocalCluster", cluster_kwargs=cluster_kwargs)
    if kind == "lumi" and rest:
        _require("dask_jobqueue", "dask-jobqueue", "lumi")
        if shutil.which("sbatch") is None:
            # SLURMCluster would only log the failed submissions, and the flow would wait forever
            raise NodeUnavailableError(
                f"Task runner {spec!r} submits Slurm jobs, but 'sbatch' is not on this machine's PATH: "
                "run the flow on a LUMI login node."
            )
        from blocks.base import load_block
        from blocks.lumi import LumiSlurmConfig

        block = load_block(LumiSlurmConfig, rest)
        return _dask_runner(cluster_class="dask_jobqueue.SLURMCluster", cluster_kwargs=block.cluster_kwargs())
    raise SpecError(f"Unknown task runner {spec!r}; use {_FORMS}.")


def _dask_runner(**kwargs: Any) -> TaskRunner[Any]:
    _require("prefect_dask", "prefect-dask", "dask")
    from prefect_dask import DaskTaskRunner

    return DaskTaskRunner(**kwargs)


def _require(module: str, package: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ProviderUnavailableError(
            f"This task runner needs {package}, which is not installed. {install_hint(extra)}"
        )


def run_circuit_with_runner(params: RunCircuitParameters, runner: str | None) -> dict[str, Any]:
    """Run the ``run-circuit`` flow with its tasks on the task runner ``runner`` names.

    Args:
        params: The flow's parameters.
        runner: A task runner spec (see :func:`task_runner_for`).

    Returns:
        The flow's summary (run key, storage URL, strategy, timings, top outcomes).
    """
    return run_circuit.with_options(task_runner=task_runner_for(runner))(params)
