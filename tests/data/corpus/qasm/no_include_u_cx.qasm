// Tests: OpenQASM 2 without `include "qelib1.inc"`: only the built-in `U` and `CX` exist, and every
// other gate (h, cz, a Bell-pair preparer) is a custom definition on top of them.
// Expected result: Bell pair on q[0], q[1] (counts "00" and "11" only in c).
OPENQASM 2.0;
gate h a { U(pi / 2, 0, pi) a; }
gate cz a, b { h b; CX a, b; h b; }
gate bell a, b { h a; CX a, b; }
qreg q[2];
creg c[2];
bell q[0], q[1];
cz q[0], q[1];
cz q[0], q[1];
measure q[0] -> c[0];
measure q[1] -> c[1];
