// A Bell pair: half the shots give 00, half give 11.
//   qcos run examples/bell_pair.qasm --shots 4000 --seed 1
OPENQASM 3.0;
include "stdgates.inc";

qubit[2] q;
bit[2] c;

h q[0];
cx q[0], q[1];
c = measure q;
