// Tests: OpenQASM 2 dynamic features: a mid-circuit measurement, classical feed-forward with the
// register-equality condition `if (creg == n)` (the only form OpenQASM 2 has), applied to a custom
// gate, and `reset` of a measured qubit that is then reused.
// Expected result (deterministic): q[0] is measured 1, so flip2 fires on q[1], q[2]; q[0] is reset
// and flipped again: out = 111 (out[2]out[1]out[0]), m = 1.
OPENQASM 2.0;
include "qelib1.inc";
gate flip2 a, b { x a; x b; }
qreg q[3];
creg m[1];
creg out[3];
x q[0];
measure q[0] -> m[0];
if (m == 1) flip2 q[1], q[2];
reset q[0];
x q[0];
measure q -> out;
