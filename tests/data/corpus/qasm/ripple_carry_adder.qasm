// Tests: custom 3-qubit (`maj`, `uma`, Cuccaro et al., quant-ph/0410184) and 4-qubit (`add_top`) gates
// forming a 4-bit ripple-carry adder, with several classical registers measured.
// Computes b <- a + b with carry-out in cout: a = 1011 (11), b = 0110 (6), a + b = 17.
// Expected result (deterministic): ans = 0001, carry = 1, ain = 1011 (a is restored),
// i.e. Qiskit count key "1011 1 0001" (ain carry ans, last-declared register first).
OPENQASM 2.0;
include "qelib1.inc";
// Majority: c, b, a -> c xor a, b xor a, MAJ(a, b, c).
gate maj c, b, a { cx a, b; cx a, c; ccx c, b, a; }
// UnMajority and Add: undoes maj and leaves the sum bit in b.
gate uma c, b, a { ccx c, b, a; cx a, c; cx c, b; }
// Top bit: majority, copy the carry out, then unmajority (4 qubits).
gate add_top c, b, a, z { maj c, b, a; cx a, z; uma c, b, a; }
qreg cin[1];
qreg a[4];
qreg b[4];
qreg cout[1];
creg ans[4];
creg carry[1];
creg ain[4];
// a = 1011
x a[0];
x a[1];
x a[3];
// b = 0110
x b[1];
x b[2];
maj cin[0], b[0], a[0];
maj a[0], b[1], a[1];
maj a[1], b[2], a[2];
add_top a[2], b[3], a[3], cout[0];
uma a[1], b[2], a[2];
uma a[0], b[1], a[1];
uma cin[0], b[0], a[0];
measure b -> ans;
measure cout[0] -> carry[0];
measure a -> ain;
