"""Vendor batching: how many tasks (billed jobs) a workload sends with and without several circuits per job.

IBM Runtime runs the PUBs of one ``SamplerV2`` job together, Amazon Braket the programs of one
program set; the executor sends a node's shards (cut subexperiments, sweep bindings) in as few
jobs as each service allows (``NodeProvider.job_limits``). Each workload runs twice through the
QVM's executor in EMULATED mode (the same code path as LIVE up to the SDK call), once with
``circuits_per_job: 1`` (the anchor: one task per circuit) and once with the provider's
default, counting the provider's ``submit`` and ``submit_many`` calls: those are the tasks a
LIVE run creates and pays a per-task fee for (Braket QPUs: $0.30 each).

Workloads, on two nodes of each provider:

* **cut**: an 8-qubit chain (random ``ry``/``rz``, CX ladder) on 5-qubit nodes: every
  subexperiment of the cut is a shard (proportional shot allocation: one job per distinct shot
  count, as Braket program sets and IBM's Runtime 0.48+ require equal shots within a job);
* **cut-uniform**: the same with ``shot_allocation="uniform"``;
* **efficient-su2**: Qiskit's ``efficient_su2(7, reps=1)`` with fixed random angles, cut for
  4-qubit nodes;
* **sweep**: a 60-point grid of a parameterized 2-qubit circuit.

Result: the ratio of tasks with batching to tasks without, per provider and workload (lower is
better; the issue sets no number, so it passes when the ratio is at most 1).

Run: ``python -m bench.batching [--strict]``
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from qiskit import QuantumCircuit

from bench.common import Verdicts, base_parser, environment, result_line, table
from network.distributed_qvm import DistributedQVM, SweepSpec, VirtualCircuitSpec
from network.node_providers import ClusterBuilder, NodeProvider, get_provider

SWEEP = """OPENQASM 3.0;
include "stdgates.inc";
input float[64] theta;
qubit[2] q;
bit[2] c;
ry(theta) q[0];
cx q[0], q[1];
c = measure q;
"""
#: Per-task fee of Braket's QPUs (providers/prices.py), to put a price on the tasks saved.
BRAKET_TASK_FEE = 0.30


def chain(n: int, seed: int) -> QuantumCircuit:
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(n, n)
    for q in range(n):
        qc.ry(float(rng.uniform(0, np.pi)), q)
    for q in range(n - 1):
        qc.cx(q, q + 1)
        qc.rz(float(rng.uniform(0, np.pi)), q + 1)
    qc.measure(range(n), range(n))
    return qc


def efficient_su2(n: int, seed: int) -> QuantumCircuit:
    from qiskit.circuit.library import efficient_su2 as library_su2

    ansatz = library_su2(n, reps=1)
    rng = np.random.default_rng(seed)
    bound = ansatz.assign_parameters(rng.uniform(0, 2 * np.pi, ansatz.num_parameters))
    bound.measure_all()
    return bound


class Counter:
    """Counts a provider's task submissions (``submit``: one circuit; ``submit_many``: one job of several)."""

    def __init__(self, provider: NodeProvider) -> None:
        self.tasks = 0
        self.circuits = 0
        submit, submit_many = provider.submit, provider.submit_many

        def one(*args: Any, **kwargs: Any) -> Any:
            self.tasks += 1
            self.circuits += 1
            return submit(*args, **kwargs)

        def many(circuits: Any, *args: Any, **kwargs: Any) -> Any:
            self.tasks += 1
            self.circuits += len(circuits)
            return submit_many(circuits, *args, **kwargs)

        provider.submit = one  # type: ignore[method-assign]
        provider.submit_many = many  # type: ignore[method-assign]


def run(
    provider_key: str, options: dict[str, Any], work: Callable[[DistributedQVM], Any], per_job: int | None
) -> tuple[int, int, float]:
    """Tasks and circuits the workload submits, and its wall time."""
    provider = type(get_provider(provider_key))()
    counter = Counter(provider)
    extra: dict[str, Any] = {} if per_job is None else {"circuits_per_job": per_job}
    registry = ClusterBuilder().add(provider, n_nodes=2, **options, **extra).build()
    start = time.perf_counter()
    work(DistributedQVM(registry, shots=4000))
    return counter.tasks, counter.circuits, time.perf_counter() - start


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], repeat=1)
    args = parser.parse_args()
    print(environment())
    seed = args.seed
    workloads: dict[str, tuple[int, Callable[[DistributedQVM], Any]]] = {
        "cut": (5, lambda qvm: qvm.run(VirtualCircuitSpec(circuit_object=chain(8, seed), seed=seed))),
        "cut-uniform": (
            5,
            lambda qvm: qvm.run(
                VirtualCircuitSpec(circuit_object=chain(8, seed), seed=seed, shot_allocation="uniform")
            ),
        ),
        "efficient-su2": (4, lambda qvm: qvm.run(VirtualCircuitSpec(circuit_object=efficient_su2(7, seed), seed=seed))),
        "sweep": (
            2,
            lambda qvm: qvm.run_sweep(
                SweepSpec(qasm=SWEEP, grid={"theta": list(np.linspace(0, np.pi, 60))}, shots=500, seed=seed)
            ),
        ),
    }
    providers = {
        "aws_braket": {"target": "sv1"},
        "ibm_quantum": {"backend": "ibm_brisbane"},
    }
    verdicts = Verdicts(args.strict)
    rows = [["provider", "workload", "circuits", "tasks (1 per job)", "tasks (batched)", "ratio", "fees saved"]]
    results = []
    for key, options in providers.items():
        for name, (width, work) in workloads.items():
            node_options = {**options, "max_qubits": width}
            before, circuits, _ = run(key, node_options, work, 1)
            after, again, _ = run(key, node_options, work, None)
            assert circuits == again, (circuits, again)
            saved = f"${(before - after) * BRAKET_TASK_FEE:.2f}" if key == "aws_braket" else "-"
            rows.append([key, name, str(circuits), str(before), str(after), f"{after / before:.3f}", saved])
            results.append((f"batching_{key}_{name}", after / before))
    print(table(rows))
    for name, ratio in results:
        verdicts.add(result_line(name, ratio, 1.0))
    verdicts.exit()


if __name__ == "__main__":
    main()
