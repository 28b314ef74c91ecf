"""A DRY_RUN priced the way each vendor bills: IonQ gate-shots, Quantinuum HQCs, Rigetti 10 ms slices.

Three independent blocks run as a partition on three Azure Quantum nodes; nothing is contacted. The
plan's notes break its estimate down per node, quoting each bill's numbers, source and date::

    python examples/dry_run_prices.py

The blocks (2000 shots each):

* A, qubits 0-3: 5 layers of ``rz`` on each qubit and a CX chain: 20 one-qubit, 15 two-qubit gates.
* B, qubits 4-7: 2 such layers: 8 one-qubit, 6 two-qubit gates.
* C, qubits 8-9: a Bell pair: 1 one-qubit, 1 two-qubit gate.

Each block goes to the node that finishes it first, the cheapest among equals: A to Rigetti
(2.002 s = 201 slices of 10 ms x $0.013 = $2.613), B to IonQ (2000 x (8 x $0.000220 + 6 x $0.000975)
= $15.22, below the $97.50 program minimum: $97.50), C to Quantinuum (5 + 2000 x (1 + 10 x 1 + 5 x 2) /
5000 = 13.4 HQC x $12.50 = $167.50). The HQC rate here is illustrative: Quantinuum sells HQCs by
subscription, so give yours as ``hqc_rate``.
"""

from __future__ import annotations

from qiskit import QuantumCircuit

from network.distributed_qvm import DistributedQVM, QVMMode, VirtualCircuitSpec
from network.node_providers import ClusterBuilder
from network.planning import ShardPlan

__all__ = ["CLUSTER", "SHOTS", "blocks", "dry_run_plan", "main"]

SHOTS = 2000

#: Cluster-file YAML: the same text works as ``--cluster`` file for ``qcos plan``.
CLUSTER = """
nodes:
  - provider: azure_quantum
    name: ionq
    target: ionq.qpu.aria-1          # per gate-shot, $97.50 minimum per program (error mitigation on)
  - provider: azure_quantum
    name: quantinuum
    target: quantinuum.qpu.h2-1      # HQCs at your contract's rate
    hqc_rate: 12.5                   # dollars per HQC (illustrative)
  - provider: azure_quantum
    name: rigetti
    target: rigetti.qpu.ankaa-3      # $0.013 per started 10 ms
"""


def blocks() -> QuantumCircuit:
    """Blocks A (qubits 0-3, 5 layers), B (4-7, 2 layers) and C (8-9, a Bell pair), all measured."""
    qc = QuantumCircuit(10, 10)
    for first, layers in ((0, 5), (4, 2)):
        for layer in range(layers):
            for q in range(first, first + 4):
                qc.rz(0.1 * (layer + 1), q)
            for q in range(first, first + 3):
                qc.cx(q, q + 1)
    qc.h(8)
    qc.cx(8, 9)
    qc.measure(range(10), range(10))
    return qc


def dry_run_plan() -> ShardPlan:
    """The DRY_RUN's plan: one shard per block, priced per node."""
    registry = ClusterBuilder.from_yaml(CLUSTER).build()
    with DistributedQVM(registry, mode=QVMMode.DRY_RUN, shots=SHOTS) as qvm:
        result = qvm.run(VirtualCircuitSpec(circuit_object=blocks(), strategy="partition", seed=1))
    assert result.plan is not None
    return result.plan


def main() -> None:
    plan = dry_run_plan()
    print(f"{plan.strategy.value}: {len(plan.shards)} shards, estimated ${plan.estimated_cost:,.4f}")
    for shard in plan.shards:
        node = plan.node(shard.node_id)
        print(f"  shard {shard.shard_id}: qubits {list(shard.qubits)} on {shard.node_id} ({node.method}), "
              f"{shard.shots} shots, ${shard.estimated_cost:,.4f}")  # fmt: skip
    for note in plan.notes:
        head, _, parts = note.partition(" by node: ")
        if not parts:
            print(note)
            continue
        print(head + " by node:")
        for part in parts.split("; "):
            print("  " + part)


if __name__ == "__main__":
    main()
