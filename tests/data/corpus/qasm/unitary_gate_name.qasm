// Tests: a user-defined OpenQASM 2 gate named `unitary`, the name of Qiskit's UnitaryGate and of
// Aer's matrix-carrying `unitary` instruction. Here it is only an X, with no matrix parameter, so a
// backend that dispatches on the instruction name instead of using the definition goes wrong.
// It is used directly on a 3-qubit circuit, through a custom controlled version (`cunitary`), and
// inside a further custom gate that nests both.
// Expected result (deterministic): q[0] = 1, q[1] = 0, q[2] = 0, i.e. c = "001" (c[2]c[1]c[0]).
// (Aer 0.18 fails on it: transpile + run raises IndexError, mistaking it for its matrix `unitary`.)
OPENQASM 2.0;
include "qelib1.inc";
gate unitary a { x a; }
// Controlled-`unitary`: unitary is X, so its controlled form is a CX, written as users do.
gate cunitary c, t { h t; cz c, t; h t; }
// Nests both custom gates: flips a, copies it onto b, flips a back.
gate unitary_sandwich a, b { unitary a; cunitary a, b; unitary a; }
qreg q[3];
creg c[3];
unitary q[0];
cunitary q[0], q[2];
unitary_sandwich q[1], q[2];
unitary q[1];
unitary q[1];
measure q -> c;
