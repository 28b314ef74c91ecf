"""A local stand-in for the Amazon Braket API: the REST calls amazon-braket-sdk 1.88 makes, on 127.0.0.1.

It serves the ``rest-json`` operations of Braket's API model (botocore's ``braket/2019-09-01``):

* ``GET /device/{deviceArn}`` (GetDevice), ``POST /devices`` (SearchDevices);
* ``POST /quantum-task`` (CreateQuantumTask): a ``clientToken`` seen before returns the task it
  created (409 ConflictException if the request differs), so only new tasks count as submissions;
* ``GET /quantum-task/{arn}`` (GetQuantumTask): ``QUEUED`` for ``queued_polls`` reads, then
  ``RUNNING`` once, then the task is executed and ``COMPLETED``;
* ``PUT /quantum-task/{arn}/cancel`` (CancelQuantumTask);
* ``GET /offers.csv``: a price list in the AWS bulk-pricing CSV format, built from
  :mod:`providers.prices`, for the SDK's cost ``Tracker`` (point ``BRAKET_PRICE_OFFERS_URL`` at it).

Execution is real: the submitted OpenQASM program runs on the SDK's own simulator
(``braket.default_simulator``), and the results JSON Braket writes (a ``GateModelTaskResult``) goes
to ``{outputS3KeyPrefix}/{task id}/results.json`` in the S3 server (moto). IonQ devices report
``measurementProbabilities`` only, as IonQ does; simulators report their execution duration.
A program set (``braket.ir.openqasm.program_set``, its total shots divided evenly among its
executables) runs on the same simulator and writes a ``ProgramSetTaskResult``: inline, or with
``program_results_in_s3`` its programs, executables and metadata as files beside it, named
relative to its ``s3Location`` (both forms are in the schema).

Requests must be SigV4-signed: the access key id and region of each are recorded (the region of a
task's ARN is its signing region, as on AWS). Errors come back the way Braket sends them: an HTTP
status, an ``x-amzn-ErrorType`` header and a JSON ``message``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from providers.aws_braket import TARGETS
from providers.prices import PRICES

__all__ = ["BraketStandIn", "ACCOUNT"]

ACCOUNT = "123456789012"
_REGIONS = ("us-east-1", "us-west-1", "us-west-2", "eu-west-2", "eu-north-1")
_CREDENTIAL = re.compile(r"Credential=(?P<key>[^/]+)/\d{8}/(?P<region>[^/]+)/braket/aws4_request")
_ERROR_STATUS = {
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ConflictException": 409,
    "DeviceRetiredException": 410,
    "DeviceOfflineException": 424,
    "ThrottlingException": 429,
    "InternalServiceException": 500,
}


class _ApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Task:
    arn: str
    request: dict[str, Any]
    status: str = "QUEUED"
    reads: int = 0
    failure_reason: str | None = None


@dataclass
class BraketStandIn:
    """The stand-in's state; :meth:`running` serves it.

    Attributes:
        s3: A boto3 S3 client on the S3 server, where results are written.
        queued_polls: GetQuantumTask reads that see ``QUEUED`` before a task runs.
        malformed: Corrupt the next results: ``"json"`` (not JSON) or ``"qubits"`` (a measured
            qubit missing from ``measuredQubits``).
        fail_tasks: When set, tasks end ``FAILED`` with this reason instead of running.
        reject_create: When set, CreateQuantumTask answers with this error code.
        device_status: Status GetDevice reports for every device.
        calls: Operation names in the order received.
        access_keys: Access key ids that signed requests.
        submissions: Tasks created (a repeated ``clientToken`` creates none).
        program_results_in_s3: Write a program set's parts as separate files.
    """

    s3: Any
    queued_polls: int = 1
    malformed: str | None = None
    fail_tasks: str | None = None
    reject_create: str | None = None
    device_status: str = "ONLINE"
    calls: list[str] = field(default_factory=list)
    access_keys: set[str] = field(default_factory=set)
    submissions: int = 0
    program_results_in_s3: bool = False
    tasks: dict[str, _Task] = field(default_factory=dict)
    url: str = ""
    _tokens: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def running(self) -> Iterator[BraketStandIn]:
        """Serve on a free port of 127.0.0.1 until the block exits."""
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                standin._serve(self, "GET")

            def do_POST(self) -> None:
                standin._serve(self, "POST")

            def do_PUT(self) -> None:
                standin._serve(self, "PUT")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, name="braket-standin", daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join()

    # -- HTTP -------------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        path = urlsplit(handler.path).path
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"{}") if length else {}
        if method == "GET" and path == "/offers.csv":
            self._reply(handler, 200, _price_list().encode(), "text/csv")
            return
        parts = path.strip("/").split("/")
        try:
            signer = _CREDENTIAL.search(handler.headers.get("Authorization", ""))
            if signer is None:
                raise _ApiError("AccessDeniedException", "Missing or unsigned Authorization header.")
            with self._lock:
                self.access_keys.add(signer["key"])
                status, payload = self._dispatch(method, parts, body, signer["region"])
        except _ApiError as exc:
            body_out = json.dumps({"message": str(exc)}).encode()
            self._reply(handler, _ERROR_STATUS.get(exc.code, 400), body_out, "application/json", exc.code)
            return
        self._reply(handler, status, json.dumps(payload).encode(), "application/json")

    @staticmethod
    def _reply(
        handler: BaseHTTPRequestHandler, status: int, data: bytes, content_type: str, error: str | None = None
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        if error:
            handler.send_header("x-amzn-ErrorType", error)
        handler.end_headers()
        handler.wfile.write(data)

    def _dispatch(self, method: str, parts: list[str], body: dict[str, Any], region: str) -> tuple[int, Any]:
        route = (method, parts[0], len(parts))
        if route == ("GET", "device", 2):
            self.calls.append("GetDevice")
            return 200, self._device(unquote(parts[1]), full=True)
        if route == ("POST", "devices", 1):
            self.calls.append("SearchDevices")
            return 200, {"devices": [self._device(t.arn, full=False) for t in TARGETS.values()]}
        if route == ("POST", "quantum-task", 1):
            self.calls.append("CreateQuantumTask")
            return 201, {"quantumTaskArn": self._create(body, region)}
        if route == ("GET", "quantum-task", 2):
            self.calls.append("GetQuantumTask")
            return 200, self._get(unquote(parts[1]))
        if route == ("PUT", "quantum-task", 3) and parts[2] == "cancel":
            self.calls.append("CancelQuantumTask")
            task = self._task(unquote(parts[1]))
            task.status = "CANCELLED"
            return 200, {"quantumTaskArn": task.arn, "cancellationStatus": "CANCELLED"}
        raise _ApiError("ValidationException", f"No operation for {method} /{'/'.join(parts)}.")

    # -- operations ---------------------------------------------------------------------------

    def _device(self, arn: str, *, full: bool) -> dict[str, Any]:
        if arn not in {t.arn for t in TARGETS.values()}:
            raise _ApiError("ResourceNotFoundException", f"Device {arn} not found.")
        summary = {
            "deviceArn": arn,
            "deviceName": arn.rsplit("/", 1)[1],
            "providerName": arn.split("/")[-2],
            "deviceType": "QPU" if "/qpu/" in arn else "SIMULATOR",
            "deviceStatus": self.device_status,
        }
        if full:
            summary["deviceCapabilities"] = _capabilities()
        return summary

    def _create(self, request: dict[str, Any], region: str) -> str:
        if self.reject_create:
            raise _ApiError(self.reject_create, "Rejected by the stand-in.")
        for name in ("clientToken", "deviceArn", "shots", "outputS3Bucket", "outputS3KeyPrefix", "action"):
            if name not in request:
                raise _ApiError("ValidationException", f"Missing required field {name}.")
        self._device(request["deviceArn"], full=False)
        if self.device_status == "OFFLINE":
            raise _ApiError("DeviceOfflineException", "Device is offline.")
        token = request["clientToken"]
        if token in self._tokens:
            task = self.tasks[self._tokens[token]]
            if task.request != request:
                raise _ApiError("ConflictException", "clientToken reused with a different request.")
            return task.arn
        arn = f"arn:aws:braket:{region}:{ACCOUNT}:quantum-task/{uuid.uuid4()}"
        self.tasks[arn] = _Task(arn, request)
        self._tokens[token] = arn
        self.submissions += 1
        return arn

    def _task(self, arn: str) -> _Task:
        if arn not in self.tasks:
            raise _ApiError("ResourceNotFoundException", f"Quantum task {arn} not found.")
        return self.tasks[arn]

    def _get(self, arn: str) -> dict[str, Any]:
        task = self._task(arn)
        task.reads += 1
        if task.status in ("QUEUED", "RUNNING"):
            if task.reads <= self.queued_polls:
                task.status = "QUEUED"
            elif task.reads == self.queued_polls + 1:
                task.status = "RUNNING"
            elif self.fail_tasks:
                task.status, task.failure_reason = "FAILED", self.fail_tasks
            else:
                self._execute(task)
                task.status = "COMPLETED"
        request = task.request
        out = {
            "quantumTaskArn": arn,
            "status": task.status,
            "deviceArn": request["deviceArn"],
            "deviceParameters": request.get("deviceParameters", "{}"),
            "shots": request["shots"],
            "outputS3Bucket": request["outputS3Bucket"],
            "outputS3Directory": f"{request['outputS3KeyPrefix']}/{arn.rsplit('/', 1)[1]}",
            "createdAt": "2025-06-01T00:00:00.000Z",
            "tags": request.get("tags", {}),
            "queueInfo": {"queue": "QUANTUM_TASKS_QUEUE", "position": "1", "queuePriority": "Normal"},
        }
        if task.failure_reason:
            out["failureReason"] = task.failure_reason
        return out

    def _execute(self, task: _Task) -> None:
        from braket.default_simulator import DensityMatrixSimulator, StateVectorSimulator
        from braket.ir.openqasm import Program
        from braket.task_result import AdditionalMetadata, SimulatorMetadata

        request = task.request
        device = request["deviceArn"]
        simulator = DensityMatrixSimulator() if device.endswith("/dm1") else StateVectorSimulator()
        if json.loads(request["action"])["braketSchemaHeader"]["name"] == "braket.ir.openqasm.program_set":
            self._execute_program_set(task, simulator)
            return
        result = simulator.run(Program.parse_raw(request["action"]), shots=int(request["shots"]))
        result.taskMetadata.id = task.arn
        result.taskMetadata.deviceId = device
        if "/quantum-simulator/" in device:
            result.additionalMetadata = AdditionalMetadata(
                action=result.additionalMetadata.action, simulatorMetadata=SimulatorMetadata(executionDuration=1200)
            )
        data = json.loads(result.json())
        if "/ionq/" in device:  # IonQ reports frequencies, not shots
            rows = ["".join(row) for row in data["measurements"]]
            data["measurements"] = None
            data["measurementProbabilities"] = {key: rows.count(key) / len(rows) for key in set(rows)}
        text = json.dumps(data)
        if self.malformed == "json":
            text = "{not json"
        elif self.malformed == "qubits":
            data["measuredQubits"] = data["measuredQubits"][1:]
            data["measurements"] = [row[1:] for row in data["measurements"]]
            text = json.dumps(data)
        key = f"{request['outputS3KeyPrefix']}/{task.arn.rsplit('/', 1)[1]}/results.json"
        self.s3.put_object(Bucket=request["outputS3Bucket"], Key=key, Body=text.encode())

    def _execute_program_set(self, task: _Task, simulator: Any) -> None:
        from braket.ir.openqasm.program_set_v1 import ProgramSet

        request = task.request
        try:
            result = simulator.run(ProgramSet.parse_raw(request["action"]), shots=int(request["shots"]))
        except ValueError as exc:  # shots not divisible by the executables, an invalid program...
            task.status, task.failure_reason = "FAILED", str(exc)
            return
        data = json.loads(result.json())
        data["taskMetadata"]["id"] = task.arn
        data["taskMetadata"]["deviceId"] = request["deviceArn"]
        if "/ionq/" in request["deviceArn"]:
            for program in data["programResults"]:
                for executable in program["executableResults"]:
                    rows = ["".join(map(str, row)) for row in executable["measurements"]]
                    executable["measurements"] = None
                    executable["measurementProbabilities"] = {k: rows.count(k) / len(rows) for k in set(rows)}
        bucket = request["outputS3Bucket"]
        directory = f"{request['outputS3KeyPrefix']}/{task.arn.rsplit('/', 1)[1]}"
        if self.program_results_in_s3:

            def put(name: str, part: Any) -> str:
                self.s3.put_object(Bucket=bucket, Key=f"{directory}/{name}", Body=json.dumps(part).encode())
                return name

            for p, program in enumerate(data["programResults"]):
                program["executableResults"] = [
                    put(f"program-{p}/executable-{e}.json", ex) for e, ex in enumerate(program["executableResults"])
                ]
                program["source"] = put(f"program-{p}/program.json", program["source"])
            data["programResults"] = [put(f"program-{p}.json", pr) for p, pr in enumerate(data["programResults"])]
            data["taskMetadata"] = put("metadata.json", data["taskMetadata"])
            data["s3Location"] = [bucket, directory]
        self.s3.put_object(Bucket=bucket, Key=f"{directory}/results.json", Body=json.dumps(data).encode())


def _capabilities() -> str:
    """Device capabilities in a schema the SDK parses (its local simulator's)."""
    from braket.devices import LocalSimulator

    return LocalSimulator("braket_sv").properties.json()


def _price_list() -> str:
    """The table of :mod:`providers.prices` as AWS's bulk price list (5 metadata rows, then the table)."""
    header = ["Product Family", "DeviceName", "Version", "operation", "Region Code", "Unit", "PricePerUnit", "Currency"]
    rows: list[list[str]] = []
    for (provider, name), price in PRICES.items():
        if provider != "aws_braket":
            continue
        target = TARGETS[name]
        device = target.arn.rsplit("/", 1)[1]
        if target.is_qpu:
            region = target.arn.split(":")[3]
            rows.append(["Quantum Task-Shot", device, "", "", region, "shots", str(price.per_shot), "USD"])
            rows.append(["Quantum Task", device, "", "", region, "tasks", str(price.per_task), "USD"])
        else:
            per_minute = str(price.per_second * 60)
            rows.extend(
                ["Simulator Task", "", device.upper(), "CompleteTask", region, "minutes", per_minute, "USD"]
                for region in _REGIONS
            )
    out = io.StringIO()
    out.write("".join(f'"metadata {i}"\n' for i in range(5)))
    writer = csv.writer(out, quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()
