OPENQASM 3.0;
include "stdgates.inc";
bit[3] c;
qubit[1] q;
qubit[1] psi;
x psi[0];
c[2] = measure q[0];
if (c[2]) {
  x q[0];
}
h q[0];
if (c[2]) {
  rz(-pi/2) q[0];
}
h q[0];
c[1] = measure q[0];
if (c[1]) {
  x q[0];
}
h q[0];
cp(pi) psi[0], q[0];
if (c[1]) {
  rz(-pi/2) q[0];
}
if (c[2]) {
  rz(-pi/4) q[0];
}
h q[0];
c[0] = measure q[0];
if (c[0]) {
  x q[0];
}
