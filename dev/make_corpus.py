"""Regenerate the offline benchmark-circuit corpus under ``tests/data/corpus``.

Dev-only: nothing in the package or the test suite imports this file, and CI never runs it.
The corpus it writes is committed so the tests stay offline and independent of mqt-bench.

Two steps, in two interpreters (see ``dev/README.md``):

1. *Generate* (this file, run under a separate virtualenv that has ``mqt-bench`` installed):
   every family of ``mqt.bench.benchmarks.get_available_benchmark_names()`` at the ``alg`` and
   ``indep`` levels for every circuit size 4..10 the family accepts (or only its smallest valid
   size when that is above 10), serialized with ``qiskit.qasm2.dumps`` (keeps Qiskit's custom
   ``gate`` definitions) or, when OpenQASM 2 cannot express the circuit, ``qiskit.qasm3.dumps``.
2. *Check* (this same file re-executed with ``--check`` under the project's own interpreter,
   ``.venv/bin/python``, which has no mqt-bench): parse every ``.qasm`` file of the corpus, the
   hand-written ones under ``qasm/`` included, with the parsers the project uses, and return the
   per-file facts the manifest records. Parsing in the main environment matters because that is
   the Qiskit/qiskit-qasm3-import pair the tests will exercise. A file that does not parse is kept
   and marked (``parses: false`` with the error); its qubit/clbit counts and ``dynamic`` flag then
   come from the circuit it was generated from.

Determinism: ``get_benchmark`` binds free circuit parameters from ``numpy.random.default_rng(10)``
when ``random_parameters=True`` (the default, kept: ``False`` would leave unbound parameters that
OpenQASM 2 cannot export), ``indep`` transpiles with ``seed_transpiler=10``, and families whose
factory takes a ``seed`` (graphstate defaults to ``None``, i.e. a random graph) get ``seed=10``.
The OpenQASM 2 exporter names clashing gate definitions ``<name>_<id(obj)>``, which changes from run
to run, and Qiskit names anonymous circuits ``circuit-<n>`` from a process-wide counter; both kinds of
suffix are renumbered per file in order of appearance, so a file depends only on its own circuit.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qiskit.circuit import QuantumCircuit

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = REPO_ROOT / "tests" / "data" / "corpus"
MAIN_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"

LEVELS = ("alg", "indep")
WIDTHS = range(4, 11)
# Families with no valid size in WIDTHS contribute only their smallest valid size; the search stops here.
MAX_FALLBACK_WIDTH = 100
SEED = 10
# Files above this are kept but called out in the summary (the corpus is committed to git).
LARGE_FILE_BYTES = 200_000

# Run-dependent gate names: ``<stem>_<id(obj)>`` (CPython ids are addresses, so at least 9 digits)
# and ``circuit_<n>`` / ``ccircuit_<n>`` (Qiskit's process-wide ``circuit-<n>`` counter, which
# shifts whenever a family upstream builds one circuit more or less).
# The lookahead also catches derived names such as ``circuit_403_dg`` (the inverse of ``circuit_403``).
_NUMBERED_NAME = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*?)_(\d+)(?=\b|_)")
_COUNTER_STEM = re.compile(r"c*circuit")


@dataclass
class Generated:
    """One corpus file written by the generation step."""

    path: str
    family: str
    level: str
    circuit_size: int
    note: str | None
    # Facts of the generated QuantumCircuit, used in the manifest only for files that do not parse back.
    num_qubits: int
    num_clbits: int
    dynamic: bool
    # QPY of the generated circuit, written for dynamic circuits: their classical conditions (``^``...) are
    # not always readable from OpenQASM 3 by Qiskit's importer, and users bring them as Qiskit objects.
    qpy: str | None = None


@dataclass
class Skipped:
    """One (family, level, size) the generator refused or that could not be serialized."""

    family: str
    level: str
    width: int
    reason: str


# --------------------------------------------------------------------------- generation (mqt venv)


def _factory_kwargs(family: str) -> dict[str, Any]:
    """Return the extra keyword arguments that make ``family`` deterministic.

    ``get_benchmark`` forwards unknown keywords to the family's ``create_circuit``, which rejects
    ones it does not declare, so ``seed`` is passed only where the signature has it.
    """
    module = importlib.import_module(f"mqt.bench.benchmarks.{family}")
    params = inspect.signature(module.create_circuit).parameters
    return {"seed": SEED} if "seed" in params else {}


def _unparameterize_matrix_gates(qc: QuantumCircuit) -> QuantumCircuit:
    """Replace gates whose ``params`` hold matrices by parameterless gates with the same definition.

    Why: ``ae`` contains ``c-unitary`` (a ``ControlledGate`` over a ``UnitaryGate``, whose param is
    the numpy matrix). Both Qiskit exporters call ``complex(param)`` on it, which NumPy 2 refuses
    ("only 0-dimensional arrays can be converted to Python scalars"). ``UnitaryGate`` itself avoids
    this through ``_qasm_decomposition`` (``definition.to_gate()`` under the same name); the
    controlled wrapper lacks it. This does the same for any such gate, so the file still carries
    one custom ``gate`` per controlled unitary, defined by Qiskit's own synthesis.
    """
    import numpy as np

    out = qc.copy_empty_like()
    for inst in qc.data:
        op = inst.operation
        if any(isinstance(p, np.ndarray) for p in op.params) and getattr(op, "definition", None) is not None:
            gate = op.definition.to_gate()
            gate.name = op.name
            op = gate
        out.append(op, inst.qubits, inst.clbits)
    return out


def _renumber_ids(text: str) -> str:
    """Replace run-dependent ``<stem>_<number>`` gate names by ``<stem>_<k>``, k in order of appearance.

    Only ids and Qiskit's circuit counter are renumbered (see ``_NUMBERED_NAME``); a new name never
    collides with an identifier already in the file, and each old name maps to one new name, so the
    file means the same.
    """
    taken = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))
    mapping: dict[str, str] = {}
    counters: dict[str, int] = {}

    def replace(match: re.Match[str]) -> str:
        token, stem, number = match.group(0), match.group(1), match.group(2)
        if len(number) < 9 and not _COUNTER_STEM.fullmatch(stem):
            return token
        if token not in mapping:
            while True:
                counters[stem] = counters.get(stem, 0) + 1
                candidate = f"{stem}_{counters[stem]}"
                if candidate not in taken:
                    break
            taken.add(candidate)
            mapping[token] = candidate
        return mapping[token]

    return _NUMBERED_NAME.sub(replace, text)


def _serialize(qc: QuantumCircuit) -> tuple[str, str | None]:
    """Return ``(qasm_text, note)``: OpenQASM 2 when it can express ``qc``, else OpenQASM 3.

    ``note`` says which fallback was taken, if any; it ends up in the manifest.
    """
    from qiskit import qasm2, qasm3

    notes: list[str] = []
    try:
        return _renumber_ids(qasm2.dumps(qc)), None
    except TypeError as exc:
        # Matrix-valued params (see _unparameterize_matrix_gates); retry once after rewriting them.
        if "0-dimensional" not in str(exc):
            raise
        qc = _unparameterize_matrix_gates(qc)
        notes.append(
            "matrix-parameter gates (c-unitary) exported as parameterless custom gates with their Qiskit "
            f"definitions: qasm2/qasm3 dumps raised TypeError: {exc}"
        )
        try:
            return _renumber_ids(qasm2.dumps(qc)), "; ".join(notes)
        except Exception as exc2:  # any exporter refusal means "try OpenQASM 3"
            notes.append(f"qasm2.dumps refused: {exc2}")
    except Exception as exc:  # any exporter refusal means "try OpenQASM 3"
        notes.append(f"OpenQASM 3 because qasm2.dumps refused: {exc}")
    return _renumber_ids(qasm3.dumps(qc)), "; ".join(notes)


def _try_generate(family: str, level: str, size: int) -> QuantumCircuit | str:
    """Return the circuit, or the refusal reason as ``"<ExceptionType>: <message>"``."""
    from mqt.bench import BenchmarkLevel, get_benchmark

    bench_level = BenchmarkLevel.ALG if level == "alg" else BenchmarkLevel.INDEP
    try:
        return get_benchmark(family, bench_level, size, random_parameters=True, **_factory_kwargs(family))
    except Exception as exc:  # the generator signals invalid sizes with assorted types
        return f"{type(exc).__name__}: {exc}"


def generate(corpus_dir: Path) -> tuple[list[Generated], list[Skipped]]:
    """Write ``mqt/<level>/<family>_<size>.qasm`` for every accepted size; return what was done."""
    from mqt.bench.benchmarks import get_available_benchmark_names

    generated: list[Generated] = []
    skipped: list[Skipped] = []
    for level in LEVELS:
        out_dir = corpus_dir / "mqt" / level
        out_dir.mkdir(parents=True, exist_ok=True)
        # Start clean so a family or size that disappears upstream does not leave a stale file.
        for old in [*out_dir.glob("*.qasm"), *out_dir.glob("*.qpy")]:
            old.unlink()
        for family in get_available_benchmark_names():
            accepted: list[tuple[int, QuantumCircuit]] = []
            for size in WIDTHS:
                result = _try_generate(family, level, size)
                if isinstance(result, str):
                    skipped.append(Skipped(family, level, size, result))
                else:
                    accepted.append((size, result))
            if not accepted:
                # e.g. seven_qubit_steane_code (13), shors_nine_qubit_code (17), shor (18).
                for size in range(WIDTHS.stop, MAX_FALLBACK_WIDTH + 1):
                    result = _try_generate(family, level, size)
                    if not isinstance(result, str):
                        accepted.append((size, result))
                        break
                else:
                    skipped.append(
                        Skipped(family, level, MAX_FALLBACK_WIDTH, f"no valid size up to {MAX_FALLBACK_WIDTH}")
                    )
            for size, qc in accepted:
                try:
                    text, note = _serialize(qc)
                except Exception as exc:  # recorded, never fabricated
                    skipped.append(Skipped(family, level, size, f"serialization failed: {type(exc).__name__}: {exc}"))
                    continue
                path = out_dir / f"{family}_{size}.qasm"
                # The exporters end without a newline; git (and diffs of regenerated files) prefer one.
                text = text.rstrip("\n") + "\n"
                path.write_text(text, encoding="utf-8")
                rel = path.relative_to(corpus_dir).as_posix()
                qpy_rel = None
                if _is_dynamic(qc):
                    from qiskit import qpy

                    qpy_path = path.with_suffix(".qpy")
                    with qpy_path.open("wb") as handle:
                        qpy.dump(qc, handle)
                    qpy_rel = qpy_path.relative_to(corpus_dir).as_posix()
                generated.append(
                    Generated(rel, family, level, size, note, qc.num_qubits, qc.num_clbits, _is_dynamic(qc), qpy_rel)
                )
                print(f"wrote {rel} ({len(text.encode())} bytes)", file=sys.stderr)
    return generated, skipped


# --------------------------------------------------------------------------- check (main venv)


def _is_dynamic(qc: QuantumCircuit) -> bool:
    """True if ``qc`` has control flow, a reset, or a measurement followed by more work on its qubit."""
    from qiskit.circuit import ControlFlowOp

    measured: set[Any] = set()
    for inst in qc.data:
        op = inst.operation
        if isinstance(op, ControlFlowOp) or op.name == "reset":
            return True
        if op.name == "barrier":
            continue
        if measured.intersection(inst.qubits):
            return True
        if op.name == "measure":
            measured.update(inst.qubits)
    return False


def _instruction_names(qc: QuantumCircuit) -> set[str]:
    """Distinct instruction names, including those inside control-flow blocks (not gate bodies)."""
    from qiskit.circuit import ControlFlowOp

    names: set[str] = set()
    for inst in qc.data:
        names.add(inst.operation.name)
        if isinstance(inst.operation, ControlFlowOp):
            for block in inst.operation.blocks:
                names |= _instruction_names(block)
    return names


def check_file(path: Path) -> dict[str, Any]:
    """Parse one file with the project's parsers and return the manifest facts about it."""
    from qiskit import qasm2, qasm3

    text = path.read_text(encoding="utf-8")
    # The version statement is the first non-comment token; hand-written files start with comments.
    body = re.sub(r"//[^\n]*", "", text).lstrip()
    try:
        if body.startswith("OPENQASM 3"):
            qc = qasm3.loads(text)
        else:
            qc = qasm2.loads(text, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
    except Exception as exc:  # a refused file stays in the corpus, marked
        return {
            "num_qubits": None,
            "num_clbits": None,
            "dynamic": None,
            "parses": False,
            "parse_error": f"{type(exc).__name__}: {exc}",
            "instructions": [],
        }
    return {
        "num_qubits": qc.num_qubits,
        "num_clbits": qc.num_clbits,
        "dynamic": _is_dynamic(qc),
        "parses": True,
        "parse_error": None,
        "instructions": sorted(_instruction_names(qc)),
    }


def _check_main(corpus_dir: Path) -> None:
    """``--check`` entry point: print ``{relative path: facts}`` for every corpus file as JSON."""
    import qiskit

    results = {path.relative_to(corpus_dir).as_posix(): check_file(path) for path in sorted(corpus_dir.rglob("*.qasm"))}
    json.dump({"qiskit_version": qiskit.__version__, "files": results}, sys.stdout)


# --------------------------------------------------------------------------- manifest


def write_manifest(corpus_dir: Path, main_python: Path, generated: list[Generated], skipped: list[Skipped]) -> dict:
    """Run the check step under ``main_python`` and write ``manifest.json``; return the manifest."""
    from importlib.metadata import version

    proc = subprocess.run(
        [str(main_python), str(Path(__file__).resolve()), "--check", "--corpus", str(corpus_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    checked = json.loads(proc.stdout)
    facts: dict[str, dict[str, Any]] = checked["files"]

    entries: list[dict[str, Any]] = []
    for gen in generated:
        fact = dict(facts[gen.path])
        note = gen.note
        if not fact["parses"]:
            # The counts are still known from the circuit the file was written from.
            fact.update(num_qubits=gen.num_qubits, num_clbits=gen.num_clbits, dynamic=gen.dynamic)
            note = "; ".join(
                n for n in (note, "num_qubits/num_clbits/dynamic from the generated circuit (file does not parse)") if n
            )
        entries.append(
            {
                "path": gen.path,
                "source": f"mqt-bench {version('mqt.bench')}",
                "family": gen.family,
                "level": gen.level,
                "circuit_size": gen.circuit_size,
                **fact,
                "qpy": gen.qpy,
                "note": note,
            }
        )
    # Hand-written files: everything under the corpus that the generator did not write.
    written = {gen.path for gen in generated}
    for rel in sorted(set(facts) - written):
        if rel.startswith("mqt/"):
            continue  # cannot happen: generate() clears mqt/ first
        entries.append(
            {
                "path": rel,
                "source": "hand-written",
                "family": Path(rel).stem,
                "level": None,
                "circuit_size": None,
                **facts[rel],
                "note": None,
            }
        )
    manifest = {
        "generated_by": "dev/make_corpus.py",
        "mqt_bench_version": version("mqt.bench"),
        # The version the files were parsed with (main venv), which is what the facts describe.
        "qiskit_version": checked["qiskit_version"],
        "entries": entries,
        "skipped": [vars(s) for s in skipped],
    }
    (corpus_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def _summarize(corpus_dir: Path, manifest: dict) -> None:
    """Print what a reviewer wants to know before committing the corpus."""
    files = sorted(corpus_dir.rglob("*.qasm"))
    total = sum(f.stat().st_size for f in files) + (corpus_dir / "manifest.json").stat().st_size
    print(f"{len(files)} .qasm files + manifest.json, {total} bytes in all", file=sys.stderr)
    for f in files:
        if f.stat().st_size > LARGE_FILE_BYTES:
            print(f"large: {f.relative_to(corpus_dir)} ({f.stat().st_size} bytes)", file=sys.stderr)
    for entry in manifest["entries"]:
        if not entry["parses"]:
            print(f"does not parse: {entry['path']}: {entry['parse_error']}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Generate the corpus and its manifest, or (``--check``) only report parse facts as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR, help="corpus directory (default: %(default)s)")
    parser.add_argument(
        "--main-python",
        type=Path,
        default=MAIN_PYTHON,
        help="interpreter of the project's environment, used for the parse check (default: %(default)s)",
    )
    parser.add_argument("--check", action="store_true", help="internal: parse-check step, run under --main-python")
    args = parser.parse_args(argv)

    if args.check:
        _check_main(args.corpus)
        return
    generated, skipped = generate(args.corpus)
    manifest = write_manifest(args.corpus, args.main_python, generated, skipped)
    _summarize(args.corpus, manifest)


if __name__ == "__main__":
    main()
