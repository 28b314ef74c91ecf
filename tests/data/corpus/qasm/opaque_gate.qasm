// Tests: an OpenQASM 2 `opaque` gate, declared and used but never defined. Qiskit's parser accepts it
// (an Instruction with no definition), but no simulator can run it: qcos must refuse it with a typed
// error, not crash inside a backend.
OPENQASM 2.0;
include "qelib1.inc";
opaque mystery(theta) a, b;
qreg q[2];
creg c[2];
h q[0];
mystery(0.5) q[0], q[1];
cx q[0], q[1];
measure q -> c;
