OPENQASM 3.0;
include "stdgates.inc";
bit[9] c;
qubit[1] q;
qubit[1] psi;
x psi[0];
h q[0];
cp(0) psi[0], q[0];
h q[0];
c[8] = measure q[0];
if (c[8]) {
  x q[0];
}
h q[0];
cp(0) psi[0], q[0];
if (c[8]) {
  rz(-pi/2) q[0];
}
h q[0];
c[7] = measure q[0];
if (c[7]) {
  x q[0];
}
h q[0];
cp(pi) psi[0], q[0];
if (c[7]) {
  rz(-pi/2) q[0];
}
if (c[8]) {
  rz(-pi/4) q[0];
}
h q[0];
c[6] = measure q[0];
if (c[6]) {
  x q[0];
}
h q[0];
cp(pi/2) psi[0], q[0];
if (c[6]) {
  rz(-pi/2) q[0];
}
if (c[7]) {
  rz(-pi/4) q[0];
}
if (c[8]) {
  rz(-pi/8) q[0];
}
h q[0];
c[5] = measure q[0];
if (c[5]) {
  x q[0];
}
h q[0];
cp(pi/4) psi[0], q[0];
if (c[5]) {
  rz(-pi/2) q[0];
}
if (c[6]) {
  rz(-pi/4) q[0];
}
if (c[7]) {
  rz(-pi/8) q[0];
}
if (c[8]) {
  rz(-pi/16) q[0];
}
h q[0];
c[4] = measure q[0];
if (c[4]) {
  x q[0];
}
h q[0];
cp(9*pi/8) psi[0], q[0];
if (c[4]) {
  rz(-pi/2) q[0];
}
if (c[5]) {
  rz(-pi/4) q[0];
}
if (c[6]) {
  rz(-pi/8) q[0];
}
if (c[7]) {
  rz(-pi/16) q[0];
}
if (c[8]) {
  rz(-pi/32) q[0];
}
h q[0];
c[3] = measure q[0];
if (c[3]) {
  x q[0];
}
h q[0];
cp(9*pi/16) psi[0], q[0];
if (c[3]) {
  rz(-pi/2) q[0];
}
if (c[4]) {
  rz(-pi/4) q[0];
}
if (c[5]) {
  rz(-pi/8) q[0];
}
if (c[6]) {
  rz(-pi/16) q[0];
}
if (c[7]) {
  rz(-pi/32) q[0];
}
if (c[8]) {
  rz(-pi/64) q[0];
}
h q[0];
c[2] = measure q[0];
if (c[2]) {
  x q[0];
}
h q[0];
cp(9*pi/32) psi[0], q[0];
if (c[2]) {
  rz(-pi/2) q[0];
}
if (c[3]) {
  rz(-pi/4) q[0];
}
if (c[4]) {
  rz(-pi/8) q[0];
}
if (c[5]) {
  rz(-pi/16) q[0];
}
if (c[6]) {
  rz(-pi/32) q[0];
}
if (c[7]) {
  rz(-pi/64) q[0];
}
if (c[8]) {
  rz(-0.02454369260617026) q[0];
}
h q[0];
c[1] = measure q[0];
if (c[1]) {
  x q[0];
}
h q[0];
cp(73*pi/64) psi[0], q[0];
if (c[1]) {
  rz(-pi/2) q[0];
}
if (c[2]) {
  rz(-pi/4) q[0];
}
if (c[3]) {
  rz(-pi/8) q[0];
}
if (c[4]) {
  rz(-pi/16) q[0];
}
if (c[5]) {
  rz(-pi/32) q[0];
}
if (c[6]) {
  rz(-pi/64) q[0];
}
if (c[7]) {
  rz(-0.02454369260617026) q[0];
}
if (c[8]) {
  rz(-0.01227184630308513) q[0];
}
h q[0];
c[0] = measure q[0];
if (c[0]) {
  x q[0];
}
