// Tests: an OpenQASM 3 user gate named `unitary` (here an X), clashing with Qiskit's UnitaryGate and
// Aer's matrix `unitary` instruction, used directly, under `ctrl @`, and inside another custom gate,
// next to a `pow(2) @` modifier that Qiskit itself imports as a real matrix UnitaryGate also named
// `unitary`: two different instructions with the same name in one circuit.
// Expected result (deterministic): q = 1, 1, 0 -> c = "011" (c[2]c[1]c[0]).
OPENQASM 3.0;
include "stdgates.inc";
gate unitary a { x a; }
gate twice a { unitary a; unitary a; }
qubit[3] q;
bit[3] c;
unitary q[0];
ctrl @ unitary q[0], q[1];
twice q[2];
pow(2) @ unitary q[2];
c = measure q;
