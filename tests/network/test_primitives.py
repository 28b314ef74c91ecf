"""Qiskit's primitive contract, kept by QVMSampler and QVMEstimator: the behaviours Qiskit's own
tests check of StatevectorSampler and StatevectorEstimator (test/python/primitives in Qiskit), with
the QVM underneath, plus what only a cluster does (a PUB wider than the nodes is cut)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter
from qiskit.circuit.library import UnitaryGate, real_amplitudes
from qiskit.primitives import PrimitiveResult, PubResult, StatevectorEstimator
from qiskit.primitives.containers import BitArray
from qiskit.primitives.containers.data_bin import DataBin
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.providers import JobStatus
from qiskit.quantum_info import SparsePauliOp, Statevector

from network.distributed_qvm import DistributedQVM
from network.node_providers import ClusterBuilder, QPURegistry
from network.primitives import QVMEstimator, QVMSampler
from tests.stats import assert_matches

SHOTS = 4000


@pytest.fixture(scope="module")
def registry() -> QPURegistry:
    return ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=6).build()


def bell() -> QuantumCircuit:
    qc = QuantumCircuit(2, name="Bell")
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def pqc(reps: int = 2) -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.append(real_amplitudes(num_qubits=2, reps=reps), range(2))
    qc.measure_all()
    return qc


def exact_int_probabilities(circuit: QuantumCircuit) -> dict[int, float]:
    probs = Statevector(circuit.remove_final_measurements(inplace=False)).probabilities_dict()
    return {int(k, 2): float(v) for k, v in probs.items() if v > 1e-12}


def check(bits: BitArray, exact: dict[int, float]) -> None:
    """A BitArray's counts within multinomial shot noise of an exact distribution."""
    width = bits.num_bits
    counts = {format(k, f"0{width}b"): v for k, v in bits.get_int_counts().items()}
    assert_matches(counts, {format(k, f"0{width}b"): p for k, p in exact.items()})


# -- sampler ---------------------------------------------------------------------------------------


def test_sampler_run_returns_qiskits_containers(registry: QPURegistry) -> None:
    sampler = QVMSampler(registry, seed=123)
    job = sampler.run([bell()], shots=SHOTS)
    result = job.result()
    assert job.status() is JobStatus.DONE
    assert isinstance(result, PrimitiveResult) and isinstance(result.metadata, dict) and len(result) == 1
    assert isinstance(result[0], PubResult) and isinstance(result[0].data, DataBin)
    meas = result[0].data.meas
    assert isinstance(meas, BitArray) and meas.num_shots == SHOTS and meas.num_bits == 2
    check(meas, {0: 0.5, 3: 0.5})
    (run,) = result[0].metadata["qvm"]  # the plan that ran it
    assert run["strategy"] == "whole" and run["nodes"] and run["estimated_cost"] == 0
    assert result[0].metadata["shots"] == SHOTS


def test_the_same_seed_gives_the_same_samples_and_bindings_broadcast(registry: QPURegistry) -> None:
    sampler = QVMSampler(registry, seed=5)
    first = sampler.run([bell()], shots=500).result()[0].data.meas
    again = sampler.run([bell()], shots=500).result()[0].data.meas
    assert first == again
    circuit = pqc()
    values = [[0] * 6, [1] * 6, [0, 1, 1, 2, 3, 5]]
    params = tuple(p.name for p in circuit.parameters)
    result = sampler.run([(circuit, {params: values})], shots=SHOTS).result()
    meas = result[0].data.meas
    assert meas.shape == (3,) and len(result[0].metadata["qvm"]) == 3
    for i, vals in enumerate(values):
        check(meas[i], exact_int_probabilities(circuit.assign_parameters(vals)))


@pytest.mark.parametrize(
    "values",
    [{"x": math.pi}, {"x": np.array(math.pi)}, {"x": [math.pi]}, {"x": np.array([math.pi])}],
)
def test_one_parameter_in_every_form_qiskit_accepts(registry: QPURegistry, values: dict) -> None:
    x = Parameter("x")
    circuit = QuantumCircuit(1, 1, name="X gate")
    circuit.ry(x, 0)
    circuit.measure(0, 0)
    data = QVMSampler(registry, seed=1).run([(circuit, values)], shots=100).result()[0].data
    assert data.c.get_int_counts(0 if data.c.shape else ()) == {1: 100}


def test_deterministic_outcomes_and_reversed_measurement_order(registry: QPURegistry) -> None:
    circuits = []
    for flips in ([], [0], [1], [0, 1]):
        qc = QuantumCircuit(2)
        if flips:
            qc.x(flips)
        qc.measure_all()
        circuits.append(qc)
    result = QVMSampler(registry, seed=2).run(circuits, shots=50).result()
    assert [r.data.meas.get_int_counts() for r in result] == [{i: 50} for i in range(4)]
    x, y = Parameter("x"), Parameter("y")
    qc = QuantumCircuit(3, 3)
    qc.rx(x, 0)
    qc.rx(y, 1)
    qc.x(2)
    qc.measure(0, 2)
    qc.measure(1, 1)
    qc.measure(2, 0)
    result = QVMSampler(registry, seed=3).run([(qc, [0, 0]), (qc, [math.pi / 2, 0])], shots=SHOTS).result()
    assert result[0].data.c.get_int_counts() == {1: SHOTS}
    check(result[1].data.c, {1: 0.5, 5: 0.5})


def test_several_and_aliased_registers_keep_their_names_and_pairing(registry: QPURegistry) -> None:
    q = QuantumRegister(3, "qr")
    c1, c2 = ClassicalRegister(1, "c1"), ClassicalRegister(2, "c2")
    qc = QuantumCircuit(q, c1, c2)
    qc.h(0)
    qc.cx(0, 1)
    qc.x(2)
    qc.measure(0, c1[0])
    qc.measure([1, 2], c2)
    data = QVMSampler(registry, seed=4).run([qc], shots=SHOTS).result()[0].data
    assert set(data) == {"c1", "c2"}
    joint = {}  # shot by shot: c1 equals c2's bit 0, c2's bit 1 is always 1
    for a, b in zip(data.c1.get_bitstrings(), data.c2.get_bitstrings(), strict=True):
        joint[(a, b)] = joint.get((a, b), 0) + 1
    assert set(joint) == {("0", "10"), ("1", "11")}
    # aliased registers: one bit in two registers
    bits = QuantumCircuit(2, 2)
    bits.x(1)
    bits.measure([0, 1], [0, 1])
    alias = ClassicalRegister(bits=[bits.clbits[1]], name="alias")
    bits.add_register(alias)
    data = QVMSampler(registry, seed=5).run([bits], shots=20).result()[0].data
    assert data.c.get_int_counts() == {2: 20} and data.alias.get_int_counts() == {1: 20}


def test_shots_per_pub_and_errors_as_qiskit_raises_them(registry: QPURegistry) -> None:
    sampler = QVMSampler(registry, seed=6, default_shots=77)
    result = sampler.run([bell(), (bell(), None, 33), SamplerPub(bell(), shots=11)]).result()
    assert [r.data.meas.num_shots for r in result] == [77, 33, 11]
    result = sampler.run([bell(), (bell(), None, 33)], shots=22).result()
    assert [r.data.meas.num_shots for r in result] == [22, 33]
    with pytest.raises(ValueError):
        sampler.run([(bell(), [1e2])]).result()  # values for a circuit without parameters
    with pytest.raises(ValueError):
        sampler.run([pqc()]).result()  # parameters without values
    with pytest.raises(ValueError):
        sampler.run([(pqc(), [1e2])]).result()  # too few values
    for bad in (-1, 0):
        with pytest.raises(ValueError):
            sampler.run([bell()], shots=bad).result()
    with pytest.raises(ValueError, match="An invalid Sampler pub-like was given"):
        sampler.run(bell()).result()  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="no output classical registers"):
        empty = sampler.run([QuantumCircuit(2)], shots=5).result()
    assert len(empty[0].data) == 0


def test_unitary_gates_and_mid_circuit_measurements_run(registry: QPURegistry) -> None:
    qc = QuantumCircuit(2)
    qc.append(UnitaryGate(np.array([[0, 1], [1, 0]])), [0])
    qc.measure_all()
    assert QVMSampler(registry, seed=7).run([qc], shots=10).result()[0].data.meas.get_int_counts() == {1: 10}
    dynamic = QuantumCircuit(2, 2)  # what StatevectorSampler refuses
    dynamic.h(0)
    dynamic.measure(0, 0)
    with dynamic.if_test((dynamic.clbits[0], 1)):
        dynamic.x(1)
    dynamic.measure(1, 1)
    check(QVMSampler(registry, seed=8).run([dynamic], shots=SHOTS).result()[0].data.c, {0: 0.5, 3: 0.5})


def test_a_pub_wider_than_every_node_is_cut(registry: QPURegistry) -> None:
    rng = np.random.default_rng(1)
    qc = QuantumCircuit(8)
    for q in range(8):
        qc.ry(float(rng.uniform(0.3, 2.8)), q)
    for q in range(7):
        qc.cx(q, q + 1)
    qc.measure_all()
    result = QVMSampler(registry, seed=9).run([qc], shots=20_000).result()[0]
    assert result.metadata["qvm"][0]["strategy"] == "cut" and result.metadata["qvm"][0]["reconstructed"]
    counts = result.data.meas.get_int_counts()
    exact = exact_int_probabilities(qc)
    tvd = 0.5 * sum(abs(counts.get(k, 0) / 20_000 - exact.get(k, 0.0)) for k in set(counts) | set(exact))
    assert tvd < 0.06


# -- estimator -------------------------------------------------------------------------------------


def hamiltonians() -> list[SparsePauliOp]:
    return [
        SparsePauliOp.from_list([("II", -1.052), ("IZ", 0.398), ("ZI", -0.398), ("ZZ", -0.011), ("XX", 0.181)]),
        SparsePauliOp.from_list([("IZ", 1)]),
        SparsePauliOp.from_list([("ZI", 1), ("ZZ", 1)]),
    ]


def test_estimator_values_within_their_standard_errors_of_statevector(registry: QPURegistry) -> None:
    ansatz = real_amplitudes(num_qubits=2, reps=2)
    h1, h2, h3 = hamiltonians()
    theta1, theta3 = [0, 1, 1, 2, 3, 5], [1, 2, 3, 4, 5, 6]
    pubs = [(ansatz, [h1, h3], [theta1, theta3]), (ansatz, [h2], theta1)]
    ours = QVMEstimator(registry, seed=10).run(pubs, precision=0.01).result()
    exact = StatevectorEstimator().run(pubs).result()
    for mine, truth in zip(ours, exact, strict=True):
        assert mine.data.evs.shape == truth.data.evs.shape and mine.data.stds.shape == truth.data.evs.shape
        assert np.all(np.abs(mine.data.evs - truth.data.evs) <= 4 * mine.data.stds + 1e-9)
        assert np.all(mine.data.stds < 0.02)  # precision 0.01 asked; shots from it
        assert all(run["shots"] >= (1 / 0.01) ** 2 for run in mine.metadata["qvm"])
        assert mine.metadata["target_precision"] == 0.01


def test_observables_and_parameters_broadcast_as_qiskit_does(registry: QPURegistry) -> None:
    ansatz = real_amplitudes(num_qubits=2, reps=1)
    values = np.array([[[0.1, 0.2, 0.3, 0.4]], [[1.0, 0.5, 0.2, 0.1]], [[2.0, 1.0, 0.0, 3.0]]])  # (3, 1, 4)
    observables = ["ZI", "IZ", "XX"]  # (3,)
    ours = QVMEstimator(registry, seed=11).run([(ansatz, observables, values)], precision=0.02).result()[0]
    exact = StatevectorEstimator().run([(ansatz, observables, values)]).result()[0]
    assert ours.data.evs.shape == exact.data.evs.shape == (3, 3)
    assert np.all(np.abs(ours.data.evs - exact.data.evs) <= 4 * ours.data.stds + 1e-9)
    assert len(ours.metadata["qvm"]) == 3  # one run per distinct binding, its observables together


def test_estimator_errors_and_a_pub_wider_than_every_node(registry: QPURegistry) -> None:
    estimator = QVMEstimator(registry, seed=12)
    qc = QuantumCircuit(2)
    with pytest.raises(ValueError):
        estimator.run([(qc, "ZZZ")]).result()  # observable of the wrong width
    with pytest.raises(ValueError):
        estimator.run([(real_amplitudes(2, reps=1), "ZZ")]).result()  # parameters without values
    wide = QuantumCircuit(8)
    wide.h(0)
    for q in range(7):
        wide.cx(q, q + 1)
    result = estimator.run([(wide, ["Z" * 8, "ZZIIIIII", "X" * 8])], precision=0.05).result()[0]
    assert result.metadata["qvm"][0]["strategy"] == "cut" and result.metadata["qvm"][0]["cut"]["cuts"]
    assert np.all(np.abs(result.data.evs - np.array([1.0, 1.0, 1.0])) <= 4 * result.data.stds + 1e-9)


def test_a_configured_qvm_serves_both_primitives(registry: QPURegistry, tmp_path: object) -> None:
    qvm = DistributedQVM(registry, store=str(tmp_path))  # its store applies: runs are persisted
    QVMSampler(qvm, seed=13).run([bell()], shots=10).result()
    QVMEstimator(qvm, seed=13).run([(QuantumCircuit(2), "ZZ")], precision=0.1).result()
    assert qvm.store is not None and len(qvm.store.list_runs()) == 2


# -- a qiskit-addon-cutting tutorial workflow, our sampler in place of Aer's -------------------------------


def test_the_cutting_tutorial_runs_with_our_sampler(registry: QPURegistry) -> None:
    """The library's "gate cutting to reduce circuit width" workflow, unchanged but for the sampler
    line: its subexperiments (mid-circuit QPD measurements, two registers) run as PUBs on the
    cluster; the reconstructed value is within 4 standard errors (measured over repetitions) of exact."""
    from qiskit_addon_cutting import generate_cutting_experiments, partition_problem, reconstruct_expectation_values

    rng = np.random.default_rng(3)
    qc = QuantumCircuit(8)
    for q in range(8):
        qc.ry(float(rng.uniform(0.2, 2.9)), q)
    for q in (0, 1, 2, 4, 5, 6):
        qc.cx(q, q + 1)
    qc.cx(3, 4)
    for q in range(8):
        qc.ry(float(rng.uniform(0.2, 2.9)), q)
    observable = SparsePauliOp(["IIIZZIII"])
    exact = float(Statevector(qc).expectation_value(observable).real)

    values = []
    for seed in range(6):
        partitioned = partition_problem(circuit=qc, partition_labels="AAAABBBB", observables=observable.paulis)
        subexperiments, coefficients = generate_cutting_experiments(
            circuits=partitioned.subcircuits, observables=partitioned.subobservables, num_samples=np.inf
        )
        sampler = QVMSampler(registry, seed=seed)  # the one changed line (was: SamplerV2() from qiskit_aer)
        results = {label: sampler.run(subexperiments[label], shots=2000).result() for label in subexperiments}
        terms = reconstruct_expectation_values(results, coefficients, partitioned.subobservables)
        values.append(float(np.dot(terms, observable.coeffs).real))
    spread = float(np.std(values, ddof=1))
    assert spread > 0
    assert abs(np.mean(values) - exact) <= 4 * spread / math.sqrt(len(values))
    assert all(abs(v - exact) <= 4 * spread for v in values)
