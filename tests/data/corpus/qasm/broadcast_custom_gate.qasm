// Tests: OpenQASM 2 broadcasting of custom gates over whole registers (`gate r, s;` with r, s of the
// same size applies it pairwise), mixed with single-qubit arguments, and a register-wide measure.
// Expected result (deterministic): every qubit of b is flipped by the broadcast copy: b = 111, a = 111.
OPENQASM 2.0;
include "qelib1.inc";
gate copy_flip a, b { cx a, b; }
gate prep(theta) a { rx(theta) a; }
qreg a[3];
qreg b[3];
creg ma[3];
creg mb[3];
prep(pi) a;
copy_flip a, b;
copy_flip a[0], b[0];
copy_flip a[0], b[0];
measure a -> ma;
measure b -> mb;
