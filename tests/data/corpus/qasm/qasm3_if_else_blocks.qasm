// Tests: OpenQASM 3 control flow beyond a one-line `if`: `if`/`else` blocks containing custom gates, a
// condition on a whole register (`if (m == 2)`), a `while` loop on a measured bit (repeat-until-success
// on a qubit prepared in |1>, so it exits after one pass), and a measured qubit reset and reused.
// `flag` is a loose clbit (in no register): counts keyed by registers must not shift around it.
// Expected result: m = 10 (m[1]m[0]), so `bell` runs and `z` does not; flag = 0;
// out = 000 or 101 (out[2]out[1]out[0]) with probability 1/2 each.
// (With Aer 0.18 the raw counts are right, 0x16 = flag 0, out 101, m 10, but Result.get_counts()
// prints "010 11": creg_sizes cover 5 of the 6 memory slots, so the key is cut from the wrong end.)
OPENQASM 3.0;
include "stdgates.inc";
gate bell a, b { h a; cx a, b; }
qubit[3] q;
bit[2] m;
bit[3] out;
bit flag;
x q[1];
m[0] = measure q[0];
m[1] = measure q[1];
if (m == 2) {
  bell q[0], q[2];
} else {
  x q[2];
}
if (m[0]) {
  z q[2];
}
reset q[1];
x q[1];
flag = measure q[1];
while (flag) {
  x q[1];
  flag = measure q[1];
}
out = measure q;
