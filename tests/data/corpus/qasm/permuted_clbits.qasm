// Tests: measurements into permuted classical bits across two registers of different sizes
// (c[4] declared before d[2]), so the count keys are "d c" with bits in register order, not qubit order.
// Expected result (deterministic): q = 1,0,1,1,0 measured as
//   q[0] -> c[3] = 1, q[1] -> c[0] = 0, q[2] -> d[1] = 1, q[3] -> c[1] = 1, q[4] -> d[0] = 0,
//   and c[2] is never written (0): c = 1010 (c[3]c[2]c[1]c[0]), d = 10, count key "10 1010".
OPENQASM 2.0;
include "qelib1.inc";
qreg q[5];
creg c[4];
creg d[2];
x q[0];
x q[2];
x q[3];
measure q[0] -> c[3];
measure q[1] -> c[0];
measure q[2] -> d[1];
measure q[3] -> c[1];
measure q[4] -> d[0];
