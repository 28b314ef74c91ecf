OPENQASM 3.0;
include "stdgates.inc";
// A two-parameter, four-qubit ansatz for sweeps: OpenQASM 3 inputs become circuit parameters.
input float[64] theta;
input float[64] phi;
qubit[4] q;
bit[4] c;
ry(theta) q[0];
ry(theta) q[1];
ry(phi) q[2];
ry(phi) q[3];
cx q[0], q[1];
cx q[1], q[2];
cx q[2], q[3];
c = measure q;
