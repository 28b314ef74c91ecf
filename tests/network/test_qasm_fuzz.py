"""Fuzz the OpenQASM front door: every input a user can send either parses or is refused with a typed error.

The inputs are the hand-written corpus (``tests/data/corpus/qasm/*.qasm``), a few inline OpenQASM 2
and 3 programs, deterministic mutants of them (lines deleted, duplicated, swapped, truncated,
keywords / punctuation / huge numbers inserted, characters flipped, version lines changed,
register sizes blown up, braces nested 10,000 deep, very long identifiers, non-ASCII and NUL
characters) and explicit hostile programs (registers of 10^8 or 2^31 qubits, sizes that only add up
past :data:`network.circuits.MAX_QASM_BITS`, a text longer than
:data:`network.circuits.MAX_QASM_CHARS`, ``opaque`` gates, missing includes, gate definitions that
expand exponentially, sizes written in OpenQASM 3 forms the pre-scan does not read...).

Each input goes through :func:`network.circuits.parse_qasm` and
``VirtualCircuitSpec(qasm=text, shots=10)``. The only checks are:

* each call returns or raises a :class:`network.errors.QVMError`; anything else (Qiskit's Rust
  ``PanicException`` included, which is a ``BaseException``) fails the test with the input quoted;
  a typed error caused by a ``MemoryError`` counts as a failure too (an allocation blew up);
* memory stays bounded: the whole loop runs in a subprocess whose resident memory is watched from
  outside (it is stopped above :data:`RSS_LIMIT_KIB`) and whose ``ru_maxrss`` is checked at the end;
* no single input takes more than :data:`PER_INPUT_LIMIT_S` (a generous bound, not a benchmark), and
  the whole loop ends within :data:`TOTAL_TIMEOUT_S`.

The subprocess is this module run as ``python -m tests.network.test_qasm_fuzz``; it prints one JSON
object per line (``begin`` and ``end`` around each input, ``fail`` per untyped error, ``summary`` with
its ``ru_maxrss`` at the end). When an input makes it blow the memory limit, hang or die, the test
reports that input and resumes after it in a fresh process, so one run lists every such input.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS_QASM = ROOT / "tests" / "data" / "corpus" / "qasm"

#: Deterministic seed of the mutations.
SEED = 20_240_611
#: Mutants generated (spread over the seeds, round robin).
N_MUTANTS = 1500
#: Peak resident memory allowed for the whole fuzz process (1.5 GiB, in KiB like ``ru_maxrss``).
RSS_LIMIT_KIB = 3 * 2**19
#: Slowest a single input may be (both calls together), in seconds; generous on purpose.
PER_INPUT_LIMIT_S = 20.0
#: A single input running this long is stopped (tracebacks dumped by :mod:`faulthandler`).
PER_INPUT_HARD_STOP_S = 60
#: Wall-clock limit of the whole subprocess.
TOTAL_TIMEOUT_S = 300.0
#: Characters of an input quoted in a failure message.
QUOTE_CHARS = 400

# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------

from tests.network.test_spec import BELL_QASM2, BELL_QASM3  # noqa: E402  (seed programs)

CUSTOM_GATE_QASM2 = """OPENQASM 2.0;
include "qelib1.inc";
gate entangle(theta) a, b {
  rx(theta) a;
  cx a, b;
  u3(pi/2, -pi/4, theta*2) b;
}
qreg q[3];
creg c[3];
entangle(0.3) q[0], q[1];
entangle(-pi) q[1], q[2];
barrier q;
measure q -> c;
"""

CUSTOM_GATE_QASM3 = """OPENQASM 3.0;
include "stdgates.inc";
gate entangle(theta) a, b {
  rx(theta) a;
  cx a, b;
}
qubit[3] q;
bit[3] c;
entangle(0.3) q[0], q[1];
ctrl @ entangle(pi / 4) q[0], q[1], q[2];
c = measure q;
"""

IF_QASM2 = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
creg c[2];
h q[0];
measure q[0] -> c[0];
if(c==1) x q[1];
reset q[0];
measure q[1] -> c[1];
"""

IF_QASM3 = """OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
h q[0];
c[0] = measure q[0];
if (c[0]) {
  x q[1];
} else {
  h q[1];
}
c[1] = measure q[1];
"""

INLINE_SEEDS: dict[str, str] = {
    "inline:bell_qasm2": BELL_QASM2,
    "inline:bell_qasm3": BELL_QASM3,
    "inline:custom_gate_qasm2": CUSTOM_GATE_QASM2,
    "inline:custom_gate_qasm3": CUSTOM_GATE_QASM3,
    "inline:if_qasm2": IF_QASM2,
    "inline:if_qasm3": IF_QASM3,
}

HUGE_NUMBERS = (
    "99999999999999999999",
    "2147483648",
    "4294967296",
    "100000000",
    "100001",
    "1e308",
    "-1",
    "nan",
    "inf",
    "100_000_000",
    "0x7fffffff",
)
TOKENS = (
    "OPENQASM",
    "qreg",
    "creg",
    "qubit",
    "bit",
    "gate",
    "opaque",
    "measure",
    "reset",
    "if",
    "else",
    "for",
    "while",
    "barrier",
    "U",
    "CX",
    "ctrl @",
    "inv @",
    "pow(2) @",
    "const uint n = 100000000;",
    'include "qelib1.inc";',
    'include "stdgates.inc";',
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ";",
    ",",
    "->",
    "==",
    "=",
    "pi",
    "-",
    "+",
    "*",
    "/",
    "^",
    "0",
    "1",
    "3.14",
    *HUGE_NUMBERS,
)
NON_ASCII = ("é", "\xff", "\x80", "\u202e", "\ufeff", "\u00a0", "𝜋", "\ud800", "\udfff", "\x7f", "\x1b")
VERSIONS = ("OPENQASM 2.0;", "OPENQASM 3.0;", "OPENQASM 4.0;", "OPENQASM 3;", "OPENQASM 2.1;")
_VERSION_LINE = re.compile(r"^\s*OPENQASM[^\n]*$", re.MULTILINE)
_SIZE = re.compile(r"\[\s*\d+\s*\]")
_IDENT = re.compile(r"\b[A-Za-z_]\w*\b")


def seed_inputs() -> list[tuple[str, str]]:
    """The corpus files (sorted) and the inline programs, as ``(label, text)``."""
    files = sorted(CORPUS_QASM.glob("*.qasm"))
    seeds = [(f"corpus:{path.name}", path.read_text(encoding="utf-8")) for path in files]
    return seeds + list(INLINE_SEEDS.items())


def _lines(text: str) -> list[str]:
    return text.split("\n")


def _delete_line(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    del lines[rng.randrange(len(lines))]
    return "\n".join(lines)


def _duplicate_line(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    lines[i:i] = [lines[i]] * rng.choice((1, 2, 50))
    return "\n".join(lines)


def _swap_lines(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def _insert_at(rng: random.Random, text: str, piece: str) -> str:
    pos = rng.randrange(len(text) + 1)
    sep = rng.choice(("", " ", "\n"))
    return text[:pos] + sep + piece + sep + text[pos:]


def _insert_token(rng: random.Random, text: str) -> str:
    return _insert_at(rng, text, " ".join(rng.choice(TOKENS) for _ in range(rng.randint(1, 4))))


def _truncate(rng: random.Random, text: str) -> str:
    return text[: rng.randrange(len(text) + 1)]


def _flip_char(rng: random.Random, text: str) -> str:
    if not text:
        return text
    pos = rng.randrange(len(text))
    new = rng.choice((chr(rng.randrange(32, 127)), chr(rng.randrange(0, 32)), rng.choice(NON_ASCII)))
    return text[:pos] + new + text[pos + 1 :]


def _replace_version(rng: random.Random, text: str) -> str:
    version = rng.choice(VERSIONS)
    if _VERSION_LINE.search(text):
        return _VERSION_LINE.sub(version, text, count=1)
    return version + "\n" + text


def _huge_register(rng: random.Random, text: str) -> str:
    sizes = list(_SIZE.finditer(text))
    if not sizes:
        return _insert_at(rng, text, f"qreg big[{rng.choice(HUGE_NUMBERS)}];")
    m = rng.choice(sizes)
    return text[: m.start()] + f"[{rng.choice(HUGE_NUMBERS)}]" + text[m.end() :]


def _deep_nest(rng: random.Random, text: str) -> str:
    piece = rng.choice(("{" * 10_000, "{" * 10_000 + "}" * 10_000, "(" * 300, "[" * 1000, "if (c) {" * 300))
    return _insert_at(rng, text, piece)


def _long_identifier(rng: random.Random, text: str) -> str:
    names = sorted({m.group() for m in _IDENT.finditer(text)} - {"OPENQASM", "include"})
    if names and rng.random() < 0.5:  # rename one identifier everywhere (keeps the program valid)
        name = rng.choice(names)
        return re.sub(rf"\b{re.escape(name)}\b", name + "x" * 5_000, text)
    return _insert_at(rng, text, "q" * 100_000)


def _non_ascii(rng: random.Random, text: str) -> str:
    return _insert_at(rng, text, "".join(rng.choice(NON_ASCII) for _ in range(rng.randint(1, 3))))


def _nul(rng: random.Random, text: str) -> str:
    return _insert_at(rng, text, "\x00" * rng.choice((1, 3)))


MUTATIONS: tuple[Callable[[random.Random, str], str], ...] = (
    _delete_line,
    _duplicate_line,
    _swap_lines,
    _insert_token,
    _insert_token,
    _truncate,
    _flip_char,
    _flip_char,
    _replace_version,
    _huge_register,
    _deep_nest,
    _long_identifier,
    _non_ascii,
    _nul,
)


def mutants(seeds: list[tuple[str, str]], n: int, seed: int) -> Iterator[tuple[str, str]]:
    """``n`` deterministic mutants, one to three mutations each, of the seeds in turn."""
    rng = random.Random(seed)
    for i in range(n):
        label, text = seeds[i % len(seeds)]
        applied = []
        for _ in range(rng.choice((1, 1, 2, 3))):
            mutation = rng.choice(MUTATIONS)
            text = mutation(rng, text)
            applied.append(mutation.__name__.lstrip("_"))
        yield f"mutant {i} of {label} ({', '.join(applied)})", text


def _exponential_gates(version: int, depth: int) -> str:
    """``depth`` gates, each calling the previous twice: a tiny text expanding to 2**depth gates."""
    if version == 2:
        lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', "gate g0 a { x a; }"]
        lines += [f"gate g{i} a {{ g{i - 1} a; g{i - 1} a; }}" for i in range(1, depth + 1)]
        lines += ["qreg q[1];", "creg c[1];", f"g{depth} q[0];", "measure q -> c;"]
    else:
        lines = ["OPENQASM 3.0;", 'include "stdgates.inc";', "gate g0 a { x a; }"]
        lines += [f"gate g{i} a {{ g{i - 1} a; g{i - 1} a; }}" for i in range(1, depth + 1)]
        lines += ["qubit[1] q;", "bit[1] c;", f"g{depth} q[0];", "c = measure q;"]
    return "\n".join(lines) + "\n"


def hostile_inputs(max_chars: int) -> list[tuple[str, str]]:
    """Programs written to exhaust memory or time, or to crash a parser."""
    h2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
    h3 = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'
    tail2 = "creg c[1];\nmeasure q[0] -> c[0];\n"
    cases = [
        ("qasm2 qreg 1e8", h2 + "qreg q[100000000];\n" + tail2),
        ("qasm2 qreg 2^31", h2 + "qreg q[2147483648];\n" + tail2),
        ("qasm2 qreg 1e20", h2 + "qreg q[99999999999999999999];\n"),
        ("qasm2 creg 2^31", h2 + "qreg q[1];\ncreg c[2147483648];\n"),
        ("qasm2 no version qreg 1e8", "qreg q[100000000];\n"),
        ("qasm3 qubit 2^31", h3 + "qubit[2147483648] q;\n"),
        ("qasm3 bit 2^31", h3 + "qubit[1] q;\nbit[2147483648] c;\n"),
        ("qasm3 const 1e9", h3 + "const uint n = 1000000000; qubit[n] q;\n"),
        ("qasm3 const expression", h3 + "const uint n = 1000; qubit[n * n * n] q;\n"),
        ("qasm3 int 2^31 wide", h3 + "qubit[1] q;\nint[2147483648] x;\n"),
        ("qasm3 qreg 1e8", h3 + "qreg q[100000000];\n"),
        ("qasm3 qreg 1e8 underscores", h3 + "qreg q[100_000_000];\n"),
        ("qasm3 creg 1e8 underscores", h3 + "creg c[100_000_000];\n"),
        ("qasm3 qreg 1e8 hex", h3 + "qreg q[0x5f5e100];\n"),
        ("qasm3 qreg 1e8 in parentheses", h3 + "qreg q[(100000000)];\n"),
        ("qasm3 qreg 1e8 expression", h3 + "qreg q[100000000 + 0];\n"),
        ("qasm3 const qreg 1e8", h3 + "const uint n = 100000000;\nqreg q[n];\n"),
        ("qasm3 qubit 1e8 behind annotation comment", h3 + "@note /*\nqubit[100000000] q;\n// */\n"),
        (
            "qasm2 200 x qreg[1000]",
            h2 + "".join(f"qreg q{i}[1000];\n" for i in range(200)) + tail2.replace("q[0]", "q0[0]"),
        ),
        ("qasm2 200 x creg[1000]", h2 + "qreg q[1];\n" + "".join(f"creg c{i}[1000];\n" for i in range(200))),
        ("qasm3 200 x qubit[1000]", h3 + "".join(f"qubit[1000] q{i};\n" for i in range(200))),
        ("qasm3 200 x bit[1000]", h3 + "qubit[1] q;\n" + "".join(f"bit[1000] c{i};\n" for i in range(200))),
        ("qasm3 200000 single qubits", h3 + "".join(f"qubit a{i};" for i in range(200_000))),
        ("text longer than MAX_QASM_CHARS", "OPENQASM 2.0;\n" + " " * max_chars),
        ("comment longer than MAX_QASM_CHARS", "//" + "x" * max_chars),
        ("opaque gate used", h2 + "opaque secret a, b;\nqreg q[2];\ncreg c[2];\nsecret q[0], q[1];\nmeasure q -> c;\n"),
        (
            "opaque gate used, no include",
            "OPENQASM 2.0;\nopaque o a;\nqreg q[1];\ncreg c[1];\no q[0];\nmeasure q -> c;\n",
        ),
        ("qasm2 include missing file", 'OPENQASM 2.0;\ninclude "does_not_exist.inc";\nqreg q[1];\n'),
        ("qasm3 include missing file", 'OPENQASM 3.0;\ninclude "does_not_exist.inc";\nqubit[1] q;\n'),
        ("qasm2 include directory", 'OPENQASM 2.0;\ninclude "/";\nqreg q[1];\n'),
        ("qasm2 include /dev/zero", 'OPENQASM 2.0;\ninclude "/dev/zero";\nqreg q[1];\n'),
        ("empty text", ""),
        ("whitespace only", " \n\t\r\n "),
        ("comments only", "// nothing here\n/* nor\n here */\n"),
        ("version only qasm2", "OPENQASM 2.0;\n"),
        ("version only qasm3", "OPENQASM 3.0;\n"),
        ("OPENQASM 4.0", BELL_QASM2.replace("OPENQASM 2.0;", "OPENQASM 4.0;")),
        ("OPENQASM 99999999999999999999", BELL_QASM2.replace("2.0", "99999999999999999999")),
        ("unterminated block comment", h2 + "qreg q[1];\n/* never closed\n"),
        ("qasm2 10000 braces", h2 + "qreg q[1];\n" + "{" * 10_000),
        ("qasm3 10000 braces", h3 + "qubit[1] q;\n" + "{" * 10_000),
        ("qasm3 10000 balanced braces", h3 + "qubit[1] q;\n" + "{" * 10_000 + "}" * 10_000),
        ("qasm3 2000 nested ifs", h3 + "qubit[1] q;\nbit[1] c;\n" + "if (c[0]) {" * 2000 + "}" * 2000),
        ("qasm2 10000 parentheses", h2 + "qreg q[1];\nrx(" + "(" * 10_000 + "1" + ")" * 10_000 + ") q[0];\n"),
        ("qasm3 5000 parentheses", h3 + "qubit[1] q;\nrx(" + "(" * 5000 + "1" + ")" * 5000 + ") q[0];\n"),
        ("qasm2 1e308 squared", h2 + "qreg q[1];\ncreg c[1];\nrx(1e308*1e308) q[0];\nmeasure q -> c;\n"),
        ("qasm2 nan angle", h2 + "qreg q[1];\ncreg c[1];\nrx(0/0) q[0];\nmeasure q -> c;\n"),
        ("qasm2 huge angle", h2 + "qreg q[1];\ncreg c[1];\nu3(99999999999999999999,0,0) q[0];\nmeasure q -> c;\n"),
        ("qasm2 index 2^31", h2 + "qreg q[1];\ncreg c[1];\nx q[2147483648];\n"),
        ("qasm2 if 2^64", h2 + "qreg q[1];\ncreg c[1];\nif(c==18446744073709551616) x q[0];\n"),
        ("qasm3 1e308 squared", h3 + "qubit[1] q;\nbit[1] c;\nrx(1e308*1e308) q[0];\nc[0] = measure q[0];\n"),
        ("qasm3 pow 2^31", h3 + "qubit[1] q;\nbit[1] c;\npow(2147483648) @ x q[0];\nc[0] = measure q[0];\n"),
        ("qasm3 for 1e9", h3 + "qubit[1] q;\nbit[1] c;\nfor uint i in [0:1000000000] { x q[0]; }\nc = measure q;\n"),
        ("qasm2 recursive gate", h2 + "gate r a { r a; }\nqreg q[1];\ncreg c[1];\nr q[0];\nmeasure q -> c;\n"),
        ("qasm2 gates expanding to 2^23", _exponential_gates(2, 23)),
        ("qasm3 gates expanding to 2^23", _exponential_gates(3, 23)),
        ("NUL bytes", BELL_QASM2.replace("\n", "\x00\n")),
        ("NUL only", "\x00" * 100),
        ("lone surrogate", BELL_QASM3.replace("h q[0];", "h q[0]; \ud800")),
        ("non-ASCII identifiers", BELL_QASM3.replace(" q", " qü").replace("q[", "qü[")),
        ("long identifier", BELL_QASM2.replace(" q", " " + "q" * 200_000).replace("q[", "q" * 200_000 + "[")),
    ]
    return cases


def all_inputs(max_chars: int, n_mutants: int = N_MUTANTS, seed: int = SEED) -> Iterator[tuple[str, str]]:
    seeds = seed_inputs()
    yield from seeds
    yield from mutants(seeds, n_mutants, seed)
    yield from hostile_inputs(max_chars)


# --------------------------------------------------------------------------------------------
# The subprocess
# --------------------------------------------------------------------------------------------


def quote(text: str) -> str:
    """``text`` shortened to :data:`QUOTE_CHARS` characters, escapes visible."""
    if len(text) <= QUOTE_CHARS:
        return ascii(text)
    return f"{text[:QUOTE_CHARS]!a}... ({len(text):,} characters in all)"


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _caused_by_memory_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, MemoryError):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _failure(index: int, label: str, call: str, text: str, exc: BaseException, kind: str) -> dict[str, Any]:
    return {
        "event": "fail",
        "index": index,
        "label": label,
        "call": call,
        "kind": kind,
        "exception": f"{type(exc).__module__}.{type(exc).__qualname__}: {str(exc)[:500]}",
        "traceback": "".join(traceback.format_exception(exc))[-4000:],
        "input": quote(text),
    }


def run_fuzz(n_mutants: int, seed: int, start: int = 0) -> None:
    """The fuzz loop over the inputs numbered ``start`` and up; prints one JSON object a line."""
    from network.circuits import MAX_QASM_CHARS, parse_qasm
    from network.errors import QVMError
    from network.spec import VirtualCircuitSpec

    warnings.simplefilter("ignore")
    faulthandler.enable(file=sys.stderr, all_threads=True)
    calls: tuple[tuple[str, Callable[[str], object]], ...] = (
        ("parse_qasm", parse_qasm),
        ("VirtualCircuitSpec", lambda text: VirtualCircuitSpec(qasm=text, shots=10)),
    )
    inputs = list(all_inputs(MAX_QASM_CHARS, n_mutants, seed))
    for index in range(start, len(inputs)):
        label, text = inputs[index]
        _emit({"event": "begin", "index": index, "label": label, "input": quote(text)})
        faulthandler.dump_traceback_later(PER_INPUT_HARD_STOP_S, exit=True)
        results: dict[str, str] = {}
        began = time.perf_counter()
        for name, call in calls:
            try:
                call(text)
            except KeyboardInterrupt:
                raise
            except QVMError as exc:
                results[name] = type(exc).__name__
                if _caused_by_memory_error(exc):
                    _emit(_failure(index, label, name, text, exc, "typed error caused by a MemoryError"))
            except BaseException as exc:  # PanicException, SystemExit...: all untyped
                results[name] = "untyped " + type(exc).__name__
                _emit(_failure(index, label, name, text, exc, "untyped exception"))
            else:
                results[name] = "ok"
        elapsed = time.perf_counter() - began
        faulthandler.cancel_dump_traceback_later()
        _emit({"event": "end", "index": index, "label": label, "seconds": elapsed, "results": results})
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _emit({"event": "summary", "total_inputs": len(inputs), "maxrss_kib": maxrss})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=int, default=N_MUTANTS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--start", type=int, default=0, help="first input to run (resuming after a stop)")
    args = parser.parse_args(argv)
    run_fuzz(args.mutants, args.seed, args.start)
    return 0  # failures are reported as events; a non-zero code means the process itself broke


# --------------------------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------------------------

#: How the fuzz process reports its end on stderr (faulthandler, Rust's allocator, Python), most
#: telling first. Caught Rust panics print "thread '...' panicked" too, so that is not one of them.
_CRASH_MARKERS = ("Fatal Python error", "Timeout (", "memory allocation of", "Traceback (most recent")


def _rss_kib(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", status, re.MULTILINE)
    return int(match.group(1)) if match else None


def _crash_report(stderr: str) -> str:
    """The part of ``stderr`` that explains a crash (the parsers' own chatter left out)."""
    starts = [i for i in (stderr.rfind(marker) for marker in _CRASH_MARKERS) if i >= 0]
    report = stderr[starts[0] :] if starts else stderr[-2000:]
    report = report.split("\nExtension modules:")[0]
    lines = report.splitlines()
    if len(lines) > 30:  # the innermost frames and the outermost ones (where the call came from)
        lines = [*lines[:12], f"  ... ({len(lines) - 30} lines left out)", *lines[-18:]]
    return "\n".join(lines)[:6000]


def _run_segment(start: int, deadline: float, workdir: Path) -> tuple[int, list[dict[str, Any]], str, str | None]:
    """Run the fuzz from input ``start``, stopping it when its RSS passes the limit or time runs out.

    Returns:
        ``(returncode, events, stderr, why_stopped)``.
    """
    args = [sys.executable, "-m", "tests.network.test_qasm_fuzz"]
    args += ["--mutants", str(N_MUTANTS), "--seed", str(SEED), "--start", str(start)]
    out_path, err_path = workdir / f"fuzz-{start}.stdout", workdir / f"fuzz-{start}.stderr"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env["PYTHONHASHSEED"] = "0"
    stopped: str | None = None
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=err, env=env)
        try:
            while proc.poll() is None:
                rss = _rss_kib(proc.pid)
                if rss is not None and rss > RSS_LIMIT_KIB:
                    stopped = f"resident memory reached {rss / 2**20:.2f} GiB (limit {RSS_LIMIT_KIB / 2**20:.2f} GiB)"
                elif time.monotonic() > deadline:
                    stopped = f"the whole fuzz was still running after {TOTAL_TIMEOUT_S:.0f} s"
                if stopped is not None:
                    proc.send_signal(signal.SIGABRT)  # faulthandler dumps the Python stacks
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                    break
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    events = []
    for line in out_path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and "event" in event:
            events.append(event)
    return proc.returncode, events, err_path.read_text(encoding="utf-8", errors="replace"), stopped


def test_qasm_fuzz_raises_only_typed_errors_in_bounded_memory(tmp_path: Path) -> None:
    """Every input parses or is refused with a QVMError, in bounded memory and time.

    The inputs run in a subprocess; one that makes it blow the memory limit, hang or die is
    reported, and the fuzz resumes after it in a fresh process, so one run lists every such input.
    """
    deadline = time.monotonic() + TOTAL_TIMEOUT_S
    problems: list[str] = []
    fails: list[dict[str, Any]] = []
    ends: list[dict[str, Any]] = []
    summaries: list[dict[str, Any]] = []
    start, total = 0, None
    for _ in range(25):  # segments: one, plus one per input that stopped the process
        rc, events, stderr, stopped = _run_segment(start, deadline, tmp_path)
        begins = [e for e in events if e["event"] == "begin"]
        fails += [e for e in events if e["event"] == "fail"]
        ends += [e for e in events if e["event"] == "end"]
        summaries += [e for e in events if e["event"] == "summary"]
        total = summaries[-1]["total_inputs"] if summaries else total
        if stopped is None and rc == 0 and events and events[-1]["event"] == "summary":
            break
        how = f"was stopped: {stopped}" if stopped else f"exited with code {rc}"
        if not begins:
            problems.append(f"the fuzz process {how} before its first input\n{_crash_report(stderr)}")
            break
        last = begins[-1]
        problems.append(
            f"the fuzz process {how}, on input #{last['index']} ({last['label']}): {last['input']}\n"
            f"{_crash_report(stderr)}"
        )
        if stopped is not None and time.monotonic() > deadline:
            break
        start = last["index"] + 1
    for f in fails[:10]:
        problems.append(
            f"{f['kind']} from {f['call']} on input #{f['index']} ({f['label']}): {f['exception']}\n"
            f"input: {f['input']}\n{f['traceback']}"
        )
    if len(fails) > 10:
        problems.append(f"... and {len(fails) - 10} more failures")

    parse_outcomes = Counter(e["results"].get("parse_qasm", "none") for e in ends)
    spec_outcomes = Counter(e["results"].get("VirtualCircuitSpec", "none") for e in ends)
    slowest = max(ends, key=lambda e: e["seconds"], default=None)
    maxrss = max((s["maxrss_kib"] for s in summaries), default=0)
    report = {
        "inputs": total,
        "completed": len(ends),
        "parsed": parse_outcomes.pop("ok", 0),
        "parse_refused": dict(parse_outcomes),
        "spec_ok": spec_outcomes.pop("ok", 0),
        "spec_refused": dict(spec_outcomes),
        "slowest_s": round(slowest["seconds"], 3) if slowest else None,
        "slowest_label": slowest["label"] if slowest else None,
        "maxrss_kib": maxrss,
    }
    print(json.dumps(report))  # shown with pytest -s or -rP
    if maxrss >= RSS_LIMIT_KIB:
        problems.append(f"peak RSS {maxrss / 2**20:.2f} GiB, above {RSS_LIMIT_KIB / 2**20:.2f} GiB")
    problems += [f"input {e['label']!r} took {e['seconds']:.1f} s" for e in ends if e["seconds"] >= PER_INPUT_LIMIT_S]
    if not (report["parsed"] > 0 and report["parse_refused"]):
        problems.append(f"the fuzz is vacuous: {report}")
    if problems:
        pytest.fail(f"{len(problems)} problem(s); totals {report}\n\n" + "\n\n".join(problems), pytrace=False)


if __name__ == "__main__":
    sys.exit(main())
