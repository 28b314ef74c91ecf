OPENQASM 2.0;
include "qelib1.inc";
gate c_unitary q0,q1 { u(0,0,-pi/2) q0; u(pi/2,0,pi/4) q1; cx q0,q1; u(pi,-pi,-pi/2) q0; u(1.7721542475852277,2.1862760354652835,-2.1862760354652835) q1; cx q0,q1; u(pi,-pi/2,-pi/2) q0; u(2.172060543474025,1.0303768265243125,-2.385623243165886) q1; }
gate c_unitary_1 q0,q1 { u(0,0,-pi/2) q0; u(pi/2,-pi,-pi/4) q1; cx q0,q1; u(pi,-pi,-pi/2) q0; u(1.9390642202315365,2.3856232431658855,-2.3856232431658855) q1; cx q0,q1; u(pi,pi/2,-pi/2) q0; u(0.8246384324046585,-1.2977876237081865,1.1795787319873074) q1; }
gate c_unitary_2 q0,q1 { u(0,0,-pi/2) q0; u(pi/2,0,pi/4) q1; cx q0,q1; u(pi,-pi,-pi/2) q0; u(1.6492768648093172,1.9620139216024857,-1.9620139216024859) q1; cx q0,q1; u(pi,1.1503034827632188,-1.9912891708265734) q0; u(1.9607446362542211,0.8702632838238618,-2.718047974401457) q1; }
gate c_unitary_3 q0,q1 { u(0,0,-pi/2) q0; u(pi/2,0,pi/4) q1; cx q0,q1; u(pi,-pi,-pi/2) q0; u(1.863992800091797,2.3045287796594014,-2.304528779659401) q1; cx q0,q1; u(pi,-pi/2,-pi/2) q0; u(2.2666868005712626,1.1714928081750031,-2.1529370886956736) q1; }
gate c_unitary_4 q0,q1 { u(pi,3*pi/4,pi/4) q0; u(pi/2,0,pi/4) q1; cx q0,q1; u(pi,-pi,-pi/2) q0; u(1.7498117060370615,2.1529370886956736,-2.1529370886956736) q1; cx q0,q1; u(0.999138478639496,0.998736523304026,2.442778823344989) q1; }
gate c_unitary_5 q0,q1 { u(pi,3*pi/4,pi/4) q0; u(pi/2,-pi,-pi/4) q1; cx q0,q1; u(pi,-pi,-pi/2) q0; u(1.9982769572789916,2.442778823344989,-2.442778823344989) q1; cx q0,q1; u(2.3415990806044094,-1.4015888303380635,-1.3303302852611913) q1; }
gate qft_dg q0,q1,q2,q3,q4,q5 { swap q2,q3; swap q1,q4; swap q0,q5; h q0; cp(-pi/2) q1,q0; h q1; cp(-pi/4) q2,q0; cp(-pi/2) q2,q1; h q2; cp(-pi/8) q3,q0; cp(-pi/4) q3,q1; cp(-pi/2) q3,q2; h q3; cp(-pi/16) q4,q0; cp(-pi/8) q4,q1; cp(-pi/4) q4,q2; cp(-pi/2) q4,q3; h q4; cp(-pi/32) q5,q0; cp(-pi/16) q5,q1; cp(-pi/8) q5,q2; cp(-pi/4) q5,q3; cp(-pi/2) q5,q4; h q5; }
gate permutation__5_4_3_2_1_0_ q0,q1,q2,q3,q4,q5 { swap q2,q3; swap q1,q4; swap q0,q5; }
qreg eval[6];
qreg q[1];
creg meas[7];
ry(0.9272952180016122) q[0];
h eval[0];
h eval[1];
h eval[2];
h eval[3];
h eval[4];
h eval[5];
c_unitary eval[0],q[0];
c_unitary_1 eval[1],q[0];
c_unitary_2 eval[2],q[0];
c_unitary_3 eval[3],q[0];
c_unitary_4 eval[4],q[0];
c_unitary_5 eval[5],q[0];
qft_dg eval[0],eval[1],eval[2],eval[3],eval[4],eval[5];
permutation__5_4_3_2_1_0_ eval[0],eval[1],eval[2],eval[3],eval[4],eval[5];
barrier eval[0],eval[1],eval[2],eval[3],eval[4],eval[5],q[0];
measure eval[0] -> meas[0];
measure eval[1] -> meas[1];
measure eval[2] -> meas[2];
measure eval[3] -> meas[3];
measure eval[4] -> meas[4];
measure eval[5] -> meas[5];
measure q[0] -> meas[6];
