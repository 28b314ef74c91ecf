"""Prices in each vendor's billing shape, checked against bills computed by hand.

Every expected amount below is written out as arithmetic on the published figures (the issue's table,
as read 2025-02..2026-05), never computed by the code under test. LIVE-mode estimates run the real
SDKs against the local stand-ins of :mod:`tests.providers.azure_standin` and
:mod:`tests.providers.braket_standin`; nothing leaves the machine.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner
from qiskit import QuantumCircuit

from network.cli import cli
from network.distributed_qvm import DistributedQVM, QVMMode, VirtualCircuitSpec
from network.errors import ClusterConfigError, PlanningError
from network.execution import RetryPolicy
from network.node_providers import ClusterBuilder, QPUNodeSpec
from network.planning import ShardPlan, ShardPlanner
from network.pricing import (
    EHQC,
    HQC,
    GateCounts,
    GateShot,
    PerMinute,
    PerSecond,
    PerTaskShot,
    TimeSlice,
    billing_from_dict,
    gate_counts,
)
from providers import prices
from providers.prices import PRICES, lookup_price, node_prices, stale_prices

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dry_run_prices.py"
TODAY = date(2026, 12, 4)  # the reference date of the table's age check
FAST = RetryPolicy(attempts=2, base_delay=0.0, jitter=0.0, grace=0.0)


def _billing(provider: str, target: str) -> Any:
    price = lookup_price(provider, target)
    assert price is not None, (provider, target)
    return price.billing


def _circuit(one_qubit: int, two_qubit: int, width: int = 5) -> QuantumCircuit:
    """``one_qubit`` rz gates, ``two_qubit`` CX gates, every qubit measured."""
    qc = QuantumCircuit(width, width)
    for i in range(one_qubit):
        qc.rz(0.1, i % width)
    for i in range(two_qubit):
        qc.cx(i % (width - 1), i % (width - 1) + 1)
    qc.measure(range(width), range(width))
    return qc


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


def test_every_row_has_a_shape_a_date_and_a_source() -> None:
    for (provider, target), price in PRICES.items():
        assert price.source and price.as_of, (provider, target)
        assert prices.row_date(price.as_of) <= TODAY
        assert billing_from_dict(json.loads(json.dumps(price.billing.to_dict()))) == price.billing
    shapes = {key: price.shape for key, price in PRICES.items()}
    assert shapes[("aws_braket", "ionq_forte")] == "per_task_shot"
    assert shapes[("aws_braket", "sv1")] == shapes[("aws_braket", "tn1")] == "per_minute"
    assert shapes[("ibm_quantum", "ibm_heron")] == "per_second"
    assert shapes[("azure_quantum", "ionq.qpu.aria-1")] == "gate_shot"
    assert shapes[("azure_quantum", "rigetti.qpu.ankaa-3")] == "time_slice"
    assert shapes[("azure_quantum", "quantinuum.qpu.h2-1")] == "hqc"
    assert shapes[("azure_quantum", "quantinuum.sim.h2-1e")] == "ehqc"  # the emulator is not free


def test_every_braket_qpu_pays_the_same_task_fee() -> None:
    """Braket's pricing page lists $0.30 per task for every QPU; the row's source says where it is from."""
    for target in ("ionq_forte", "iqm_garnet", "iqm_emerald", "aqt_ibex_q1", "rigetti_cepheus"):
        billing = _billing("aws_braket", target)
        assert isinstance(billing, PerTaskShot) and billing.per_task == 0.30
        assert "aws.amazon.com/braket/pricing" in billing.source
    assert "task fee" in _billing("aws_braket", "iqm_emerald").source


# ---------------------------------------------------------------------------------------------
# One test per billing shape, against bills computed by hand
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "tasks", "shots", "bill"),
    [
        ("ionq_forte", 1, 1000, 0.30 + 1000 * 0.08),  # $80.30
        ("ionq_forte", 3, 300, 3 * 0.30 + 300 * 0.08),  # $24.90
        ("iqm_garnet", 1, 1000, 0.30 + 1000 * 0.00145),  # $1.75
        ("iqm_emerald", 1, 1000, 0.30 + 1000 * 0.00160),  # $1.90
        ("aqt_ibex_q1", 1, 200, 0.30 + 200 * 0.0235),  # $5.00
        ("rigetti_cepheus", 2, 4000, 2 * 0.30 + 4000 * 0.000425),  # $2.30
    ],
)
def test_braket_qpus_bill_per_task_and_shot(target: str, tasks: int, shots: int, bill: float) -> None:
    billing = _billing("aws_braket", target)
    assert billing.estimate(shots, 0.0, tasks) == pytest.approx(bill)
    assert PRICES[("aws_braket", target)].estimate(shots=shots, tasks=tasks) == pytest.approx(bill)


def test_braket_simulators_bill_per_minute_with_a_three_second_minimum() -> None:
    """The SDK's cost Tracker bills a simulator task max(duration, 3000 ms), by the millisecond."""
    tracker = pytest.importorskip("braket.tracking.tracker")
    assert timedelta(milliseconds=3000) == tracker.MIN_SIMULATOR_DURATION
    sv1, dm1, tn1 = (_billing("aws_braket", t) for t in ("sv1", "dm1", "tn1"))
    assert isinstance(sv1, PerMinute) and sv1.minimum_seconds == 3.0
    assert sv1.estimate(100, 1.0) == pytest.approx(3 / 60 * 0.075)  # 1 s is billed as 3 s: $0.00375
    assert sv1.estimate(100, 10.0) == pytest.approx(10 / 60 * 0.075)  # $0.0125
    assert dm1.estimate(100, 2.0, tasks=2) == pytest.approx(2 * 3 / 60 * 0.075)  # two 1 s tasks, 3 s each
    assert tn1.estimate(100, 90.0) == pytest.approx(1.5 * 0.275)  # $0.4125
    assert sv1.estimate(100, 3.0004) == pytest.approx(3.001 / 60 * 0.075)  # a started millisecond counts
    assert "max(1 s, 3 s minimum) = 3 s x $0.075/min = $0.003750" in sv1.breakdown(100, 1.0)


def test_ibm_bills_qpu_seconds() -> None:
    heron = _billing("ibm_quantum", "ibm_heron")
    assert isinstance(heron, PerSecond)
    assert heron.estimate(4000, 2.5) == pytest.approx(2.5 * 1.60)  # $4.00
    assert "2.5 s x $1.60/s = $4.00" in heron.breakdown(4000, 2.5)


def test_ionq_bills_gate_shots_above_its_minimum() -> None:
    ionq = _billing("azure_quantum", "ionq.qpu.aria-1")
    gates = GateCounts(one_qubit=120, two_qubit=40, measurements=5)
    # 2000 x (120 x 0.000220 + 40 x 0.000975) = 2000 x (0.0264 + 0.039) = $130.80 > $97.50
    assert ionq.estimate(2000, gates=gates) == pytest.approx(130.80)
    # two programs of 1000 shots: each $65.40, below the minimum, so 2 x $97.50
    assert ionq.estimate(2000, tasks=2, gates=gates) == pytest.approx(2 * 97.50)
    text = ionq.breakdown(1000, gates=gates)
    assert text.startswith(
        "IonQ gate-shots: 1000 shots x (120 x 1q x $0.000220 + 40 x 2q x $0.000975) = $65.40, below the $97.50 "
        "program minimum (error mitigation on): $97.50"
    )
    assert "learn.microsoft.com/azure/quantum/pricing, 2026-05" in text


def test_ionq_program_minimum_with_and_without_error_mitigation() -> None:
    gates = GateCounts(one_qubit=10, two_qubit=2, measurements=2)
    # 100 x (10 x 0.000220 + 2 x 0.000975) = 100 x 0.00415 = $0.415: the minimum applies
    on = _billing("azure_quantum", "ionq.qpu.aria-1")
    assert isinstance(on, GateShot) and on.error_mitigation  # IonQ's default
    assert on.estimate(100, gates=gates) == pytest.approx(97.50)
    off = replace(on, error_mitigation=False)
    assert off.estimate(100, gates=gates) == pytest.approx(12.42)
    assert "below the $12.42 program minimum (error mitigation off)" in off.breakdown(100, gates=gates)
    # the node group's input_params turn it off, as the job itself would run
    provider = pytest.importorskip("providers.azure_quantum").AzureQuantumProvider()
    (plain,) = provider.build_nodes(target="ionq.qpu.aria-1")
    (debiased_off,) = provider.build_nodes(
        target="ionq.qpu.aria-1", input_params={"error_mitigation": {"debias": False}}
    )
    assert plain.price(100, gates=gates) == pytest.approx(97.50)
    assert debiased_off.price(100, gates=gates) == pytest.approx(12.42)


def test_quantinuum_bills_hqcs_at_the_users_rate(caplog: pytest.LogCaptureFixture) -> None:
    provider = pytest.importorskip("providers.azure_quantum").AzureQuantumProvider()
    gates = GateCounts(one_qubit=20, two_qubit=8, measurements=4)
    (node,) = provider.build_nodes(target="quantinuum.qpu.h2-1", hqc_rate=12.5)
    assert isinstance(node.billing, HQC) and node.billing.rate == 12.5
    # HQC = 5 + 1000 x (20 + 10 x 8 + 5 x 4) / 5000 = 5 + 24 = 29; 29 x $12.50 = $362.50
    assert node.price(1000, gates=gates) == pytest.approx(362.50)
    # two programs of 500 shots: 2 x (5 + 500 x 120 / 5000) = 2 x 17 = 34 HQC = $425.00
    assert node.price(1000, tasks=2, gates=gates) == pytest.approx(425.00)
    assert "= 29 HQC x $12.50/HQC = $362.50" in node.price_breakdown(1000, gates=gates)
    # without a rate: planned at zero, and said so
    with caplog.at_level(logging.WARNING, logger="providers.prices"):
        (unpriced,) = provider.build_nodes(target="quantinuum.qpu.h2-1")
    assert unpriced.price(1000, gates=gates) == 0.0
    assert "planned at $0" in caplog.text and "hqc_rate" in caplog.text
    assert "no HQC rate given" in unpriced.price_breakdown(1000, gates=gates)
    with pytest.raises(ClusterConfigError, match="hqc_rate must be a finite number"):
        provider.build_nodes(target="quantinuum.qpu.h2-1", hqc_rate=-1)


def test_quantinuum_emulator_bills_ehqcs() -> None:
    provider = pytest.importorskip("providers.azure_quantum").AzureQuantumProvider()
    (node,) = provider.build_nodes(target="quantinuum.sim.h2-1e", hqc_rate=0.5)
    assert isinstance(node.billing, EHQC)
    gates = GateCounts(one_qubit=10, two_qubit=4, measurements=2)
    # eHQC = 5 + 500 x (10 + 10 x 4 + 5 x 2) / 5000 = 5 + 6 = 11; 11 x $0.50 = $5.50
    assert node.price(500, gates=gates) == pytest.approx(5.50)
    assert "= 11 eHQC x $0.50/eHQC = $5.50" in node.price_breakdown(500, gates=gates)


def test_rigetti_bills_started_ten_millisecond_slices() -> None:
    rigetti = _billing("azure_quantum", "rigetti.qpu.ankaa-3")
    assert isinstance(rigetti, TimeSlice) and rigetti.slice_ms == 10.0
    assert rigetti.estimate(1000, 0.020) == pytest.approx(2 * 0.013)  # exactly 2 slices: $0.026
    assert rigetti.estimate(1000, 0.0201) == pytest.approx(3 * 0.013)  # a partial third slice rounds up
    assert rigetti.estimate(1000, 1.002) == pytest.approx(101 * 0.013)  # 100.2 slices -> 101: $1.313
    assert rigetti.estimate(1000, 0.040, tasks=2) == pytest.approx(2 * 2 * 0.013)  # 20 ms each
    assert "1.002 s = 101 slice(s) of 10 ms" in rigetti.breakdown(1000, 1.002)


def test_gate_counts_follow_the_vendors_rules() -> None:
    qc = QuantumCircuit(4, 2)
    qc.h(0)
    qc.rz(0.3, 1)
    qc.cx(0, 1)
    qc.barrier()
    qc.ccx(0, 1, 2)  # IonQ: 6 x (3 - 2) two-qubit gates
    qc.reset(3)  # Quantinuum's Nm counts resets with measurements
    qc.measure([0, 1], [0, 1])
    assert gate_counts(qc) == GateCounts(one_qubit=2, two_qubit=1 + 6, measurements=1 + 2)


def test_nodes_serialize_their_billing() -> None:
    provider = pytest.importorskip("providers.azure_quantum").AzureQuantumProvider()
    (node,) = provider.build_nodes(target="quantinuum.qpu.h2-1", hqc_rate=12.5)
    again = QPUNodeSpec.from_dict(json.loads(json.dumps(node.to_dict())))
    assert again == node and isinstance(again.billing, HQC) and again.billing.rate == 12.5
    with pytest.raises(ClusterConfigError, match="Unknown billing kind 'barter'"):
        QPUNodeSpec("n", "p", 2, billing={"kind": "barter"})  # type: ignore[arg-type]


def test_cluster_file_overrides_keep_or_replace_the_shape() -> None:
    sv1 = node_prices("aws_braket", "sv1", cost_per_second=0.5)  # $30/min, still at least 3 s per task
    assert isinstance(sv1["billing"], PerMinute) and sv1["billing"].estimate(1, 1.0) == pytest.approx(3 * 0.5)
    forte = node_prices("aws_braket", "ionq_forte", cost_per_shot=0.05)
    assert forte["billing"] is not None and forte["billing"].estimate(100) == pytest.approx(0.30 + 100 * 0.05)
    flat = node_prices("azure_quantum", "ionq.qpu.aria-1", cost_per_shot=0.5)  # no gate-shot rate: flat
    assert flat["billing"] is None and flat["cost_per_shot"] == 0.5


# ---------------------------------------------------------------------------------------------
# `qcos providers` warns about rows more than a year old
# ---------------------------------------------------------------------------------------------


def test_qcos_providers_warns_about_prices_older_than_a_year(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prices, "_today", lambda: TODAY)
    stale = {(provider, target) for provider, target, _, _ in stale_prices()}
    assert ("aws_braket", "rigetti_ankaa") in stale  # read 2025-06-01: 551 days before 2026-12-04
    assert ("aws_braket", "ionq_forte") not in stale  # read 2026-05
    result = CliRunner().invoke(cli, ["providers"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == len(stale) > 0
    assert any("aws_braket rigetti_ankaa was read 2025-06-01 (551 days ago" in w for w in warnings)
    assert not any("ionq_forte" in w for w in warnings)
    as_json = CliRunner().invoke(cli, ["providers", "--json"])
    assert as_json.exit_code == 0
    assert isinstance(json.loads(as_json.stdout), list)  # stdout stays the JSON rows
    assert "rigetti_ankaa was read 2025-06-01" in as_json.stderr
    # a year to the day is not more than a year
    monkeypatch.setattr(prices, "_today", lambda: date(2026, 6, 1))
    assert CliRunner().invoke(cli, ["providers"]).stdout.count("warning: ") == 0


# ---------------------------------------------------------------------------------------------
# The planner bills what the vendor bills
# ---------------------------------------------------------------------------------------------


def _ionq_cluster(**kwargs: Any) -> Any:
    pytest.importorskip("providers.azure_quantum")
    return ClusterBuilder().add("azure_quantum", name="ionq", target="ionq.qpu.aria-1", **kwargs).build()


def test_a_gate_shot_plan_costs_the_hand_computed_bill() -> None:
    qc = _circuit(one_qubit=30, two_qubit=10)
    plan = ShardPlanner().plan(VirtualCircuitSpec(circuit_object=qc, shots=10_000), _ionq_cluster())
    (shard,) = plan.shards
    # 10000 x (30 x 0.000220 + 10 x 0.000975) = 10000 x (0.0066 + 0.00975) = $163.50
    assert shard.estimated_cost == pytest.approx(163.50) and plan.estimated_cost == pytest.approx(163.50)
    assert any("ionq-0: IonQ gate-shots: 10000 shots x (30 x 1q" in note for note in plan.notes)
    assert ShardPlan.from_dict(json.loads(plan.to_json())).nodes[0].billing == plan.nodes[0].billing


def test_max_cost_refuses_an_ionq_plan_under_its_program_minimum() -> None:
    qc = _circuit(one_qubit=1, two_qubit=1, width=2)
    registry = _ionq_cluster()
    # 100 x (1 x 0.000220 + 1 x 0.000975) = $0.1195, but a program costs at least $97.50
    with pytest.raises(PlanningError, match=r"max_cost=50.*estimated at 97\.5 .*below the \$97\.50 program minimum"):
        ShardPlanner().plan(VirtualCircuitSpec(circuit_object=qc, shots=100, max_cost=50), registry)
    plan = ShardPlanner().plan(VirtualCircuitSpec(circuit_object=qc, shots=100, max_cost=100), registry)
    assert plan.estimated_cost == pytest.approx(97.50)


# ---------------------------------------------------------------------------------------------
# The DRY_RUN example
# ---------------------------------------------------------------------------------------------


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dry_run_prices", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_example_breaks_down_gate_shot_hqc_and_slice_pricing(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("providers.azure_quantum")
    example = _example()
    plan = example.dry_run_plan()
    by_node = {s.node_id: s.estimated_cost for s in plan.shards}
    # rigetti: 2.002 s -> 201 slices x $0.013; ionq: 2000 x (8 x 0.000220 + 6 x 0.000975) = $15.22 -> $97.50;
    # quantinuum: (5 + 2000 x (1 + 10 x 1 + 5 x 2) / 5000) x $12.50 = 13.4 x 12.5
    assert by_node == pytest.approx({"rigetti-0": 201 * 0.013, "ionq-0": 97.50, "quantinuum-0": 13.4 * 12.5})
    assert plan.estimated_cost == pytest.approx(201 * 0.013 + 97.50 + 13.4 * 12.5)
    example.main()
    out = capsys.readouterr().out
    assert "ionq-0: IonQ gate-shots: 2000 shots x (8 x 1q x $0.000220 + 6 x 2q x $0.000975) = $15.22" in out
    assert "quantinuum-0: Quantinuum HQCs: 5 + 2000 shots x" in out and "= 13.4 HQC x $12.50/HQC = $167.50" in out
    assert "rigetti-0: Rigetti 10 ms slices: 2.002 s = 201 slice(s)" in out


# ---------------------------------------------------------------------------------------------
# LIVE: the SDKs' own figures where they exist, and which source was used
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def azure_standin() -> Iterator[Any]:
    standin_module = pytest.importorskip("tests.providers.azure_standin")
    server = standin_module.AzureQuantumStandIn(api_key="aq-prices-key")
    with server.running():
        yield server


def _azure_live(standin: Any, target: str, shots: int, **group: Any) -> Any:
    from providers.azure_quantum import AzureQuantumProvider

    provider = AzureQuantumProvider(workspace=standin.make_workspace())
    registry = ClusterBuilder().add(provider, target=target, **group).build()
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    return DistributedQVM(registry, mode=QVMMode.LIVE, shots=shots, retry=FAST).run(
        VirtualCircuitSpec(circuit_object=qc, seed=3)
    )


def test_azure_live_without_an_sdk_estimate_reports_the_tables_bill(azure_standin: Any) -> None:
    """azure-quantum 3.12 has no estimate_cost: the job's price is the node's bill for the circuit as sent."""
    from azure.quantum.target import IonQ

    assert not hasattr(IonQ, "estimate_cost")
    result = _azure_live(azure_standin, "ionq.qpu.aria-1", 400)
    (shard,) = result.shard_results
    # h + cx as sent: 400 x (1 x 0.000220 + 1 x 0.000975) = $0.478, below the minimum: $97.50
    assert shard.extra["cost_usd"] == pytest.approx(97.50)
    assert shard.extra["cost_source"] == "table 2026-05 learn.microsoft.com/azure/quantum/pricing"
    assert any("Cost reported by the providers for 1 shard(s): $97.5" in n for n in result.notes)


def test_azure_live_quantinuum_emulator_is_priced_in_ehqcs(azure_standin: Any) -> None:
    result = _azure_live(azure_standin, "quantinuum.sim.h2-1e", 400, hqc_rate=0.5)
    (shard,) = result.shard_results
    # h, cx, 2 measurements: 5 + 400 x (1 + 10 x 1 + 5 x 2) / 5000 = 6.68 eHQC x $0.50 = $3.34
    assert shard.extra["cost_usd"] == pytest.approx(3.34)
    assert shard.extra["cost_source"].startswith("table 2026-05 learn.microsoft.com/azure/quantum/pricing")


def test_azure_live_prefers_the_services_cost_estimate(azure_standin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job whose details carry the service's costEstimate reports it, and keeps the estimate made before."""
    finish = type(azure_standin)._finish

    def finish_with_cost(self: Any, job_id: str, job: Any) -> None:
        finish(self, job_id, job)
        job.details["costEstimate"] = {"currencyCode": "USD", "estimatedTotal": 97.5, "events": []}

    monkeypatch.setattr(type(azure_standin), "_finish", finish_with_cost)
    (shard,) = _azure_live(azure_standin, "ionq.qpu.aria-1", 400).shard_results
    assert shard.extra["cost_usd"] == 97.5 and shard.extra["cost_source"] == "Azure Quantum job costEstimate"
    assert shard.extra["cost_estimate_source"].startswith("table 2026-05")


def test_azure_live_uses_the_sdks_estimate_cost_where_it_has_one(
    azure_standin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Releases of azure-quantum before 3 had ``IonQ.estimate_cost(circuit, shots, price_1q, price_2q,
    min_price)``; where the SDK has it, it prices the job (with the table's rates)."""
    from azure.quantum._client.models import CostEstimate
    from azure.quantum.target import IonQ

    calls: list[dict[str, Any]] = []

    def estimate_cost(self: Any, circuit: Any, shots: int, **rates: float) -> Any:
        calls.append({"shots": shots, **rates, "gates": len(circuit["circuit"])})
        return CostEstimate(currency_code="USD", estimated_total=42.0)

    monkeypatch.setattr(IonQ, "estimate_cost", estimate_cost, raising=False)
    (shard,) = _azure_live(azure_standin, "ionq.qpu.aria-1", 400).shard_results
    assert shard.extra == {**shard.extra, "cost_usd": 42.0, "cost_source": "Azure estimate_cost"}
    assert calls == [{"shots": 400, "price_1q": 0.000220, "price_2q": 0.000975, "min_price": 97.50, "gates": 2}]


@pytest.fixture
def braket_standin(s3_server: Any, aws_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    standin_module = pytest.importorskip("tests.providers.braket_standin")
    with standin_module.BraketStandIn(s3_server.client(), queued_polls=0).running() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BRAKET", server.url)
        yield server


def _with_device_cost(monkeypatch: pytest.MonkeyPatch, price: float, unit: str) -> None:
    """The stand-in's device properties with a ``service.deviceCost``, as Braket may publish it."""
    import tests.providers.braket_standin as standin_module

    plain = standin_module._capabilities

    def capabilities() -> str:
        document = json.loads(plain())
        document["service"]["deviceCost"] = {"price": price, "unit": unit}
        return json.dumps(document)

    monkeypatch.setattr(standin_module, "_capabilities", capabilities)


def test_braket_live_takes_the_devices_own_price(braket_standin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    only_q0 = QuantumCircuit(1, 1)
    only_q0.x(0)
    only_q0.measure(0, 0)
    spec = VirtualCircuitSpec(circuit_object=only_q0)
    registry = ClusterBuilder().add("aws_braket", target="ionq_forte").build()
    # without deviceCost in its properties: the table, and its source
    table = DistributedQVM(registry, mode=QVMMode.LIVE, shots=1000).plan(spec)
    assert table.estimated_cost == pytest.approx(0.30 + 1000 * 0.08)
    assert table.nodes[0].billing is not None and table.nodes[0].billing.source == "aws.amazon.com/braket/pricing"
    _with_device_cost(monkeypatch, 0.09, "shot")
    plan = DistributedQVM(registry, mode=QVMMode.LIVE, shots=1000).plan(spec)
    assert plan.estimated_cost == pytest.approx(0.30 + 1000 * 0.09)  # the device's $0.09 per shot
    billing = plan.nodes[0].billing
    assert billing is not None and billing.source.startswith("Braket device properties deviceCost ($0.09/shot")
    assert any("Braket device properties deviceCost" in note for note in plan.notes)
    assert braket_standin.calls.count("CreateQuantumTask") == 0  # planning submits nothing
