// Tests: OpenQASM 2 files that (re)define gates outside the original qelib1.inc, as Qiskit's own
// exporter and other tools write them (rzz, cu, sxdg, rxx definitions next to `include "qelib1.inc"`).
// The parser must take them with LEGACY_CUSTOM_INSTRUCTIONS; the body is what the file says.
OPENQASM 2.0;
include "qelib1.inc";
gate rzz(theta) a, b { cx a, b; u1(theta) b; cx a, b; }
gate sxdg a { s a; h a; s a; }
gate rxx(theta) a, b { u3(pi / 2, theta, 0) a; h b; cx a, b; u1(-theta) b; cx a, b; h b; u2(-pi, pi - theta) a; }
gate cu(theta, phi, lambda, gamma) c, t { p(gamma) c; p((lambda + phi) / 2) c; p((lambda - phi) / 2) t; cx c, t; u(-theta / 2, 0, -(phi + lambda) / 2) t; cx c, t; u(theta / 2, phi, 0) t; }
qreg q[3];
creg c[3];
h q[0];
rzz(0.4) q[0], q[1];
sxdg q[2];
rxx(1.2) q[1], q[2];
cu(0.1, 0.2, 0.3, 0.4) q[0], q[2];
measure q -> c;
