// Tests: OpenQASM 2 custom gates built from other custom gates, with parameters passed through and
// combined in expressions (theta/2, -phi, pi*theta). `myrzz` is a ZZ rotation from CX and RZ; `zz_ring`
// applies it around a 3-qubit ring; `layer` wraps `zz_ring` between Hadamard layers, so the nesting
// depth is three custom gates before reaching qelib1 gates.
OPENQASM 2.0;
include "qelib1.inc";
gate myrzz(theta) a, b { cx a, b; rz(theta) b; cx a, b; }
gate zz_ring(theta, phi) a, b, c { myrzz(theta) a, b; myrzz(phi) b, c; myrzz(theta / 2) a, c; }
gate layer(theta, phi) a, b, c { h a; h b; h c; zz_ring(theta, -phi) a, b, c; rx(pi * theta) a; h a; h b; h c; }
qreg q[3];
creg c[3];
layer(0.3, 1.1) q[0], q[1], q[2];
zz_ring(pi / 4, 0.25) q[2], q[0], q[1];
myrzz(-0.7) q[1], q[2];
measure q -> c;
