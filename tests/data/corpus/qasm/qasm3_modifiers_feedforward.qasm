// Tests: OpenQASM 3 custom `gate` definitions with `qubit[n]` / `bit[n]` declarations, the gate
// modifiers Qiskit's importer accepts (`ctrl @`, `ctrl(2) @`, `negctrl @`, `inv @`, `pow(2) @`) on
// standard and custom gates, a mid-circuit measurement with `if (c[0]) x q[1];` feed-forward, and a
// `reset`. Note: `pow(2) @` on a custom gate is imported as a matrix `unitary` instruction.
// (`for` loops are left out: qiskit-qasm3-import 0.6.0 refuses `for int i in [0:1]`.)
// Expected result (deterministic): c[0] = 1 so x q[1] fires; c = "0111" (c[3]c[2]c[1]c[0]).
OPENQASM 3.0;
include "stdgates.inc";
gate phase_kick(theta) a, b { cx a, b; rz(theta) b; cx a, b; }
gate prep a { h a; s a; }
qubit[4] q;
bit[4] c;
prep q[0];
inv @ prep q[0];
x q[0];
ctrl @ phase_kick(0.5) q[0], q[2], q[3];
inv @ phase_kick(0.25) q[2], q[3];
pow(2) @ s q[2];
pow(2) @ phase_kick(0.125) q[2], q[3];
ctrl(2) @ x q[0], q[2], q[3];
negctrl @ x q[1], q[2];
c[0] = measure q[0];
if (c[0]) x q[1];
reset q[0];
c[1] = measure q[1];
c[2] = measure q[2];
c[3] = measure q[3];
