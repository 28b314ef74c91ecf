"""Where and how QCOS runs Dask workers on LUMI's GPU nodes (LUMI-G) through Slurm.

One block describes the Slurm jobs: the project account, the partition, the GCDs per node, the wall
time, the node memory, the shell lines that set up the ROCm build of Aer, and the Python that starts
the Dask worker. :meth:`LumiSlurmConfig.cluster_kwargs` turns it into the keyword arguments of
``dask_jobqueue.SLURMCluster``; both the ``lumi_amd_gpu`` provider and the flows' ``lumi:<block>``
task runner (:mod:`flows.dask_runner`) use them. Each Slurm job is one LUMI-G node running one Dask
worker that owns all of the node's GCDs.
"""

from __future__ import annotations

import re
from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, field_validator

from providers.lumi import LUMI_G_GCDS

__all__ = ["LumiSlurmConfig", "slurm_memory_bytes"]

# Slurm's --time formats: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
_TIME = re.compile(r"^(\d+-\d{1,2}(:\d{2}){0,2}|\d+(:\d{2}){0,2})$")
# Slurm's --mem: a whole number, optionally suffixed K, M, G or T (binary units; no suffix means M)
_MEMORY = re.compile(r"^(\d+)([KMGT]?)$")
_UNITS = {"K": 2**10, "": 2**20, "M": 2**20, "G": 2**30, "T": 2**40}


def slurm_memory_bytes(memory: str) -> int:
    """Bytes meant by a Slurm ``--mem`` value such as ``"480G"``.

    Raises:
        ValueError: ``memory`` is not a Slurm memory size.
    """
    match = _MEMORY.match(memory.strip().upper())
    if match is None:
        raise ValueError(f"Memory {memory!r} is not a Slurm size such as '480G' (a number with K, M, G or T).")
    return int(match.group(1)) * _UNITS[match.group(2)]


class LumiSlurmConfig(Block):
    """Slurm jobs on LUMI-G that each run one Dask worker on one GPU node.

    The worker owns the node's GCDs and advertises them as the Dask resource ``GCD``, so one
    simulation holds a node at a time.

    Example:
        ```python
        from blocks.lumi import LumiSlurmConfig

        LumiSlurmConfig(account="project_465000123", nodes=2).save("lumi-g")
        ```
    """

    _block_type_name = "QCOS LUMI Slurm"

    account: str = Field(
        ..., description="Slurm account (the LUMI project) billed for the jobs, e.g. 'project_465000123'."
    )
    partition: str = Field(
        default="standard-g",
        description="Slurm partition: 'standard-g' (whole nodes), 'small-g' (parts of a node), 'dev-g' (short tests).",
    )
    gcds_per_node: int = Field(
        default=LUMI_G_GCDS,
        ge=0,
        le=LUMI_G_GCDS,
        description=(
            "GCDs (Slurm GPUs) each job asks for: 8 is a whole LUMI-G node (4 MI250X, 64 GB HBM per GCD); "
            "0 for CPU partitions such as 'standard' (LUMI-C)."
        ),
    )
    nodes: int = Field(default=1, ge=1, description="Slurm jobs to start, one LUMI-G node and one Dask worker each.")
    time_limit: str = Field(default="01:00:00", description="Wall time of each job (Slurm --time), e.g. '01:00:00'.")
    memory: str = Field(
        default="480G", description="Host memory per node (Slurm --mem); a LUMI-G node has 512 GiB in all."
    )
    cores: int = Field(
        default=56, ge=1, description="CPU cores per job; LUMI-G nodes leave 56 of their 64 cores to jobs."
    )
    job_script_prologue: list[str] = Field(
        default_factory=lambda: ["module load LUMI/24.03 partition/G", "module load rocm"],
        description=(
            "Shell lines run before the worker starts: modules, a container, or activating the virtual "
            "environment that holds the ROCm build of Aer (e.g. 'source /project/project_465000123/qcos/bin/activate')."
        ),
    )
    python: str | None = Field(
        default=None,
        description=(
            "Python that starts the Dask worker on the compute node. Empty: the interpreter that submits the "
            "jobs (a virtual environment under /project or /scratch is visible from login and compute nodes)."
        ),
    )
    local_directory: str | None = Field(
        default=None, description="Directory for the worker's scratch files on the compute node (default: /tmp)."
    )
    log_directory: str | None = Field(
        default=None,
        description="Directory for each job's Slurm output and error files (default: where it is submitted).",
    )
    extra_directives: list[str] = Field(
        default_factory=list,
        description="More #SBATCH options, without the prefix, e.g. ['--qos=high', '--exclusive'].",
    )
    interface: str | None = Field(
        default=None,
        description=(
            "Network interface the scheduler and workers listen on, as `ip addr` names it on the login and the "
            "compute nodes; empty: each host's default address."
        ),
    )
    dashboard_address: str | None = Field(
        default=":0",
        description=(
            "Where the scheduler on the login node serves its Dask dashboard: ':0' a free port (its link is "
            "logged; login nodes are shared, so a fixed port such as ':8787' may be taken), empty for none."
        ),
    )
    death_timeout: int = Field(
        default=120,
        ge=1,
        description="Seconds a worker waits for a lost scheduler before it exits, which ends its job and its billing.",
    )

    @field_validator("account", "partition")
    @classmethod
    def _no_blanks(cls, value: str) -> str:
        if not value or any(ch.isspace() for ch in value):
            raise ValueError(f"must be a non-empty word without spaces, got {value!r}")
        return value

    @field_validator("time_limit")
    @classmethod
    def _slurm_time(cls, value: str) -> str:
        if not _TIME.match(value):
            raise ValueError(f"{value!r} is not a Slurm time such as '01:00:00' or '1-12:00:00'")
        return value

    @field_validator("memory")
    @classmethod
    def _slurm_memory(cls, value: str) -> str:
        slurm_memory_bytes(value)
        return value.strip().upper()

    @field_validator("extra_directives")
    @classmethod
    def _bare_directives(cls, value: list[str]) -> list[str]:
        for directive in value:
            if directive.strip().startswith("#"):
                raise ValueError(f"give directives without '#SBATCH', got {directive!r}")
        return [d.strip() for d in value]

    def cluster_kwargs(self, *, jobs: int | None = None, gcds: int | None = None) -> dict[str, Any]:
        """Keyword arguments for ``dask_jobqueue.SLURMCluster``.

        Each job asks for one node (``--nodes=1``, one task) with ``gcds`` GCDs (``--gpus-per-node``),
        the node's memory and cores, and runs one Dask worker process with the resource ``GCD=<gcds>``
        (no GPUs and no resource when ``gcds`` is 0).

        Args:
            jobs: Jobs (workers) to start at once; default :attr:`nodes`.
            gcds: GCDs per job; default :attr:`gcds_per_node`.

        Raises:
            ValueError: ``gcds`` is not 0 to 8.
        """
        gpus = self.gcds_per_node if gcds is None else gcds
        if not 0 <= gpus <= LUMI_G_GCDS:
            raise ValueError(f"A LUMI-G node has {LUMI_G_GCDS} GCDs; got gcds={gpus}.")
        gpu_request = [f"--gpus-per-node={gpus}"] if gpus else []
        kwargs: dict[str, Any] = {
            "queue": self.partition,
            "account": self.account,
            "walltime": self.time_limit,
            "cores": self.cores,
            "processes": 1,
            # the worker's memory limit in dask's notation; Slurm gets the block's own text below
            "memory": f"{slurm_memory_bytes(self.memory) // 2**20}MiB",
            "job_mem": self.memory,
            "job_name": "qcos-lumi",
            "job_extra_directives": ["--nodes=1", *gpu_request, *self.extra_directives],
            "job_script_prologue": list(self.job_script_prologue),
            "worker_extra_args": ["--resources", f"GCD={gpus}"] if gpus else [],
            "death_timeout": self.death_timeout,
            "scheduler_options": {"dashboard_address": self.dashboard_address or None},
            "n_workers": self.nodes if jobs is None else jobs,
        }
        optional = {
            "python": self.python,
            "local_directory": self.local_directory,
            "log_directory": self.log_directory,
            "interface": self.interface,
        }
        kwargs.update({key: value for key, value in optional.items() if value})
        return kwargs
