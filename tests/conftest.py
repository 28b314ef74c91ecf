from __future__ import annotations

import random

import pytest
from qiskit import QuantumCircuit

from network.node_providers import ClusterBuilder, QPURegistry

#: A one-parameter Bell-pair sweep circuit (OpenQASM 3 ``input float``).
SWEEP_QASM = """OPENQASM 3.0;
include "stdgates.inc";
input float[64] theta;
qubit[2] q;
bit[2] c;
ry(theta) q[0];
cx q[0], q[1];
c = measure q;
"""


def random_block_circuit(n_blocks: int, width: int, depth: int, seed: int = 0) -> QuantumCircuit:
    """Independent blocks: random ry/rz layers and a CX brickwork inside each block."""
    rng = random.Random(seed)
    qc = QuantumCircuit(n_blocks * width)
    for b in range(n_blocks):
        base = b * width
        for d in range(depth):
            for q in range(width):
                qc.ry(rng.uniform(0, 3.1), base + q)
                qc.rz(rng.uniform(0, 6.2), base + q)
            for q in range(d % 2, width - 1, 2):
                qc.cx(base + q, base + q + 1)
    return qc


def undeferrable_circuit() -> QuantumCircuit:
    """Repeat-until-success: a ``while`` loop on a measured bit, which no unitary can stand for."""
    qc = QuantumCircuit(1, 1)
    qc.h(0)
    qc.measure(0, 0)
    with qc.while_loop((qc.clbits[0], 1)):
        qc.h(0)
        qc.measure(0, 0)
    return qc


@pytest.fixture(scope="session")
def cpu_cluster() -> QPURegistry:
    return ClusterBuilder().add("local_cpu", n_nodes=4, max_qubits=12).build()


# Shared fixtures for a real S3-compatible server (moto) on 127.0.0.1.
pytest_plugins = ["tests.s3server", "tests.prefect_harness"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow", action="store_true", help="also run the tests marked slow (the rest of the public corpus)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` run with ``--slow`` or ``-m slow``; CI runs the others."""
    if config.getoption("--slow") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow (or -m slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The public corpus's pass table, when its test ran."""
    import sys

    corpus = sys.modules.get("tests.network.test_corpus")
    for line in corpus.summary_lines() if corpus is not None else []:
        terminalreporter.write_line(line)
