OPENQASM 2.0;
include "qelib1.inc";
gate mcx q0,q1,q2,q3,q4,q5,q6,q7 { h q7; cp(pi/2) q6,q7; cp(pi/4) q5,q7; crx(pi/2) q5,q6; cp(pi/8) q4,q7; crx(pi/4) q4,q6; cp(pi/16) q3,q7; crx(pi/2) q4,q5; crx(pi/8) q3,q6; cp(pi/32) q2,q7; crx(pi/4) q3,q5; crx(pi/16) q2,q6; cp(pi/64) q1,q7; crx(pi/2) q3,q4; crx(pi/8) q2,q5; crx(pi/32) q1,q6; cp(pi/64) q0,q7; crx(pi/4) q2,q4; crx(pi/16) q1,q5; crx(pi/32) q0,q6; crx(pi/2) q2,q3; crx(pi/8) q1,q4; crx(pi/16) q0,q5; crx(pi/4) q1,q3; crx(pi/8) q0,q4; crx(pi/2) q1,q2; crx(pi/4) q0,q3; crx(pi/2) q0,q2; crx(pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; crx(-pi/16) q1,q5; crx(-pi/2) q3,q4; crx(-pi/8) q2,q5; crx(-pi/32) q1,q6; crx(-pi/4) q3,q5; crx(-pi/16) q2,q6; cp(-pi/64) q1,q7; crx(-pi/2) q4,q5; crx(-pi/8) q3,q6; cp(-pi/32) q2,q7; crx(-pi/4) q4,q6; cp(-pi/16) q3,q7; crx(-pi/2) q5,q6; cp(-pi/8) q4,q7; cp(-pi/4) q5,q7; cp(-pi/2) q6,q7; crx(pi/2) q5,q6; crx(pi/4) q4,q6; crx(pi/2) q4,q5; crx(pi/8) q3,q6; crx(pi/4) q3,q5; crx(pi/16) q2,q6; crx(pi/2) q3,q4; crx(pi/8) q2,q5; crx(pi/32) q1,q6; crx(pi/4) q2,q4; crx(pi/16) q1,q5; crx(-pi/32) q0,q6; crx(pi/2) q2,q3; crx(pi/8) q1,q4; crx(-pi/16) q0,q5; crx(pi/4) q1,q3; crx(-pi/8) q0,q4; crx(pi/2) q1,q2; crx(-pi/4) q0,q3; crx(-pi/2) q0,q2; crx(-pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; crx(-pi/16) q1,q5; crx(-pi/2) q3,q4; crx(-pi/8) q2,q5; crx(-pi/32) q1,q6; crx(-pi/4) q3,q5; crx(-pi/16) q2,q6; crx(-pi/2) q4,q5; crx(-pi/8) q3,q6; crx(-pi/4) q4,q6; crx(-pi/2) q5,q6; h q7; }
gate mcx_1 q0,q1,q2,q3,q4,q5,q6 { h q6; cp(pi/2) q5,q6; cp(pi/4) q4,q6; crx(pi/2) q4,q5; cp(pi/8) q3,q6; crx(pi/4) q3,q5; cp(pi/16) q2,q6; crx(pi/2) q3,q4; crx(pi/8) q2,q5; cp(pi/32) q1,q6; crx(pi/4) q2,q4; crx(pi/16) q1,q5; cp(pi/32) q0,q6; crx(pi/2) q2,q3; crx(pi/8) q1,q4; crx(pi/16) q0,q5; crx(pi/4) q1,q3; crx(pi/8) q0,q4; crx(pi/2) q1,q2; crx(pi/4) q0,q3; crx(pi/2) q0,q2; crx(pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; crx(-pi/16) q1,q5; crx(-pi/2) q3,q4; crx(-pi/8) q2,q5; cp(-pi/32) q1,q6; crx(-pi/4) q3,q5; cp(-pi/16) q2,q6; crx(-pi/2) q4,q5; cp(-pi/8) q3,q6; cp(-pi/4) q4,q6; cp(-pi/2) q5,q6; crx(pi/2) q4,q5; crx(pi/4) q3,q5; crx(pi/2) q3,q4; crx(pi/8) q2,q5; crx(pi/4) q2,q4; crx(pi/16) q1,q5; crx(pi/2) q2,q3; crx(pi/8) q1,q4; crx(-pi/16) q0,q5; crx(pi/4) q1,q3; crx(-pi/8) q0,q4; crx(pi/2) q1,q2; crx(-pi/4) q0,q3; crx(-pi/2) q0,q2; crx(-pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; crx(-pi/16) q1,q5; crx(-pi/2) q3,q4; crx(-pi/8) q2,q5; crx(-pi/4) q3,q5; crx(-pi/2) q4,q5; h q6; }
gate mcx_2 q0,q1,q2,q3,q4,q5 { h q5; cp(pi/2) q4,q5; cp(pi/4) q3,q5; crx(pi/2) q3,q4; cp(pi/8) q2,q5; crx(pi/4) q2,q4; cp(pi/16) q1,q5; crx(pi/2) q2,q3; crx(pi/8) q1,q4; cp(pi/16) q0,q5; crx(pi/4) q1,q3; crx(pi/8) q0,q4; crx(pi/2) q1,q2; crx(pi/4) q0,q3; crx(pi/2) q0,q2; crx(pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; cp(-pi/16) q1,q5; crx(-pi/2) q3,q4; cp(-pi/8) q2,q5; cp(-pi/4) q3,q5; cp(-pi/2) q4,q5; crx(pi/2) q3,q4; crx(pi/4) q2,q4; crx(pi/2) q2,q3; crx(pi/8) q1,q4; crx(pi/4) q1,q3; crx(-pi/8) q0,q4; crx(pi/2) q1,q2; crx(-pi/4) q0,q3; crx(-pi/2) q0,q2; crx(-pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; crx(-pi/2) q3,q4; h q5; }
gate mcx_3 q0,q1,q2,q3,q4 { h q4; cp(pi/2) q3,q4; h q4; h q3; t q3; cx q2,q3; tdg q3; h q3; cx q0,q3; t q3; cx q1,q3; tdg q3; cx q0,q3; t q3; cx q1,q3; tdg q3; h q3; t q3; cx q2,q3; tdg q3; h q3; h q4; cp(-pi/2) q3,q4; h q4; h q3; t q3; cx q2,q3; tdg q3; h q3; t q3; cx q1,q3; tdg q3; cx q0,q3; t q3; cx q1,q3; tdg q3; cx q0,q3; h q3; t q3; cx q2,q3; tdg q3; h q3; h q4; cp(pi/8) q0,q4; h q4; cx q0,q1; h q4; cp(-pi/8) q1,q4; h q4; cx q0,q1; h q4; cp(pi/8) q1,q4; h q4; cx q1,q2; h q4; cp(-pi/8) q2,q4; h q4; cx q0,q2; h q4; cp(pi/8) q2,q4; h q4; cx q1,q2; h q4; cp(-pi/8) q2,q4; h q4; cx q0,q2; h q4; cp(pi/8) q2,q4; h q4; }
gate mcx_4 q0,q1,q2,q3 { h q3; p(pi/8) q0; p(pi/8) q1; p(pi/8) q2; p(pi/8) q3; cx q0,q1; p(-pi/8) q1; cx q0,q1; cx q1,q2; p(-pi/8) q2; cx q0,q2; p(pi/8) q2; cx q1,q2; p(-pi/8) q2; cx q0,q2; cx q2,q3; p(-pi/8) q3; cx q1,q3; p(pi/8) q3; cx q2,q3; p(-pi/8) q3; cx q0,q3; p(pi/8) q3; cx q2,q3; p(-pi/8) q3; cx q1,q3; p(pi/8) q3; cx q2,q3; p(-pi/8) q3; cx q0,q3; h q3; }
gate mcx_5 q0,q1,q2,q3,q4,q5,q6 { h q6; cp(pi/2) q5,q6; cp(pi/4) q4,q6; crx(pi/2) q4,q5; cp(pi/8) q3,q6; crx(pi/4) q3,q5; cp(pi/16) q2,q6; crx(pi/2) q3,q4; crx(pi/8) q2,q5; cp(pi/32) q1,q6; crx(pi/4) q2,q4; crx(pi/16) q1,q5; cp(pi/32) q0,q6; crx(pi/2) q2,q3; crx(pi/8) q1,q4; crx(pi/16) q0,q5; crx(pi/4) q1,q3; crx(pi/8) q0,q4; crx(pi/2) q1,q2; crx(pi/4) q0,q3; crx(pi/2) q0,q2; crx(pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; crx(-pi/16) q1,q5; crx(-pi/2) q3,q4; crx(-pi/8) q2,q5; cp(-pi/32) q1,q6; crx(-pi/4) q3,q5; cp(-pi/16) q2,q6; crx(-pi/2) q4,q5; cp(-pi/8) q3,q6; cp(-pi/4) q4,q6; cp(-pi/2) q5,q6; crx(pi/2) q4,q5; crx(pi/4) q3,q5; crx(pi/2) q3,q4; crx(pi/8) q2,q5; crx(pi/4) q2,q4; crx(pi/16) q1,q5; crx(pi/2) q2,q3; crx(pi/8) q1,q4; crx(-pi/16) q0,q5; crx(pi/4) q1,q3; crx(-pi/8) q0,q4; crx(pi/2) q1,q2; crx(-pi/4) q0,q3; crx(-pi/2) q0,q2; crx(-pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; crx(-pi/16) q1,q5; crx(-pi/2) q3,q4; crx(-pi/8) q2,q5; crx(-pi/4) q3,q5; crx(-pi/2) q4,q5; h q6; }
gate mcx_6 q0,q1,q2,q3,q4,q5 { h q5; cp(pi/2) q4,q5; cp(pi/4) q3,q5; crx(pi/2) q3,q4; cp(pi/8) q2,q5; crx(pi/4) q2,q4; cp(pi/16) q1,q5; crx(pi/2) q2,q3; crx(pi/8) q1,q4; cp(pi/16) q0,q5; crx(pi/4) q1,q3; crx(pi/8) q0,q4; crx(pi/2) q1,q2; crx(pi/4) q0,q3; crx(pi/2) q0,q2; crx(pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; cp(-pi/16) q1,q5; crx(-pi/2) q3,q4; cp(-pi/8) q2,q5; cp(-pi/4) q3,q5; cp(-pi/2) q4,q5; crx(pi/2) q3,q4; crx(pi/4) q2,q4; crx(pi/2) q2,q3; crx(pi/8) q1,q4; crx(pi/4) q1,q3; crx(-pi/8) q0,q4; crx(pi/2) q1,q2; crx(-pi/4) q0,q3; crx(-pi/2) q0,q2; crx(-pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; crx(-pi/2) q3,q4; h q5; }
gate mcx_7 q0,q1,q2,q3,q4 { h q4; cp(pi/2) q3,q4; h q4; h q3; t q3; cx q2,q3; tdg q3; h q3; cx q0,q3; t q3; cx q1,q3; tdg q3; cx q0,q3; t q3; cx q1,q3; tdg q3; h q3; t q3; cx q2,q3; tdg q3; h q3; h q4; cp(-pi/2) q3,q4; h q4; h q3; t q3; cx q2,q3; tdg q3; h q3; t q3; cx q1,q3; tdg q3; cx q0,q3; t q3; cx q1,q3; tdg q3; cx q0,q3; h q3; t q3; cx q2,q3; tdg q3; h q3; h q4; cp(pi/8) q0,q4; h q4; cx q0,q1; h q4; cp(-pi/8) q1,q4; h q4; cx q0,q1; h q4; cp(pi/8) q1,q4; h q4; cx q1,q2; h q4; cp(-pi/8) q2,q4; h q4; cx q0,q2; h q4; cp(pi/8) q2,q4; h q4; cx q1,q2; h q4; cp(-pi/8) q2,q4; h q4; cx q0,q2; h q4; cp(pi/8) q2,q4; h q4; }
gate mcx_8 q0,q1,q2,q3 { h q3; p(pi/8) q0; p(pi/8) q1; p(pi/8) q2; p(pi/8) q3; cx q0,q1; p(-pi/8) q1; cx q0,q1; cx q1,q2; p(-pi/8) q2; cx q0,q2; p(pi/8) q2; cx q1,q2; p(-pi/8) q2; cx q0,q2; cx q2,q3; p(-pi/8) q3; cx q1,q3; p(pi/8) q3; cx q2,q3; p(-pi/8) q3; cx q0,q3; p(pi/8) q3; cx q2,q3; p(-pi/8) q3; cx q1,q3; p(pi/8) q3; cx q2,q3; p(-pi/8) q3; cx q0,q3; h q3; }
gate mcx_9 q0,q1,q2,q3,q4,q5,q6 { h q6; cp(pi/2) q5,q6; cp(pi/4) q4,q6; crx(pi/2) q4,q5; cp(pi/8) q3,q6; crx(pi/4) q3,q5; cp(pi/16) q2,q6; crx(pi/2) q3,q4; crx(pi/8) q2,q5; cp(pi/32) q1,q6; crx(pi/4) q2,q4; crx(pi/16) q1,q5; cp(pi/32) q0,q6; crx(pi/2) q2,q3; crx(pi/8) q1,q4; crx(pi/16) q0,q5; crx(pi/4) q1,q3; crx(pi/8) q0,q4; crx(pi/2) q1,q2; crx(pi/4) q0,q3; crx(pi/2) q0,q2; crx(pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; crx(-pi/16) q1,q5; crx(-pi/2) q3,q4; crx(-pi/8) q2,q5; cp(-pi/32) q1,q6; crx(-pi/4) q3,q5; cp(-pi/16) q2,q6; crx(-pi/2) q4,q5; cp(-pi/8) q3,q6; cp(-pi/4) q4,q6; cp(-pi/2) q5,q6; crx(pi/2) q4,q5; crx(pi/4) q3,q5; crx(pi/2) q3,q4; crx(pi/8) q2,q5; crx(pi/4) q2,q4; crx(pi/16) q1,q5; crx(pi/2) q2,q3; crx(pi/8) q1,q4; crx(-pi/16) q0,q5; crx(pi/4) q1,q3; crx(-pi/8) q0,q4; crx(pi/2) q1,q2; crx(-pi/4) q0,q3; crx(-pi/2) q0,q2; crx(-pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; crx(-pi/16) q1,q5; crx(-pi/2) q3,q4; crx(-pi/8) q2,q5; crx(-pi/4) q3,q5; crx(-pi/2) q4,q5; h q6; }
gate mcx_10 q0,q1,q2,q3,q4,q5 { h q5; cp(pi/2) q4,q5; cp(pi/4) q3,q5; crx(pi/2) q3,q4; cp(pi/8) q2,q5; crx(pi/4) q2,q4; cp(pi/16) q1,q5; crx(pi/2) q2,q3; crx(pi/8) q1,q4; cp(pi/16) q0,q5; crx(pi/4) q1,q3; crx(pi/8) q0,q4; crx(pi/2) q1,q2; crx(pi/4) q0,q3; crx(pi/2) q0,q2; crx(pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; cp(-pi/16) q1,q5; crx(-pi/2) q3,q4; cp(-pi/8) q2,q5; cp(-pi/4) q3,q5; cp(-pi/2) q4,q5; crx(pi/2) q3,q4; crx(pi/4) q2,q4; crx(pi/2) q2,q3; crx(pi/8) q1,q4; crx(pi/4) q1,q3; crx(-pi/8) q0,q4; crx(pi/2) q1,q2; crx(-pi/4) q0,q3; crx(-pi/2) q0,q2; crx(-pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; crx(-pi/2) q3,q4; h q5; }
gate mcx_11 q0,q1,q2,q3,q4 { h q4; cp(pi/2) q3,q4; h q4; h q3; t q3; cx q2,q3; tdg q3; h q3; cx q0,q3; t q3; cx q1,q3; tdg q3; cx q0,q3; t q3; cx q1,q3; tdg q3; h q3; t q3; cx q2,q3; tdg q3; h q3; h q4; cp(-pi/2) q3,q4; h q4; h q3; t q3; cx q2,q3; tdg q3; h q3; t q3; cx q1,q3; tdg q3; cx q0,q3; t q3; cx q1,q3; tdg q3; cx q0,q3; h q3; t q3; cx q2,q3; tdg q3; h q3; h q4; cp(pi/8) q0,q4; h q4; cx q0,q1; h q4; cp(-pi/8) q1,q4; h q4; cx q0,q1; h q4; cp(pi/8) q1,q4; h q4; cx q1,q2; h q4; cp(-pi/8) q2,q4; h q4; cx q0,q2; h q4; cp(pi/8) q2,q4; h q4; cx q1,q2; h q4; cp(-pi/8) q2,q4; h q4; cx q0,q2; h q4; cp(pi/8) q2,q4; h q4; }
gate mcx_12 q0,q1,q2,q3 { h q3; p(pi/8) q0; p(pi/8) q1; p(pi/8) q2; p(pi/8) q3; cx q0,q1; p(-pi/8) q1; cx q0,q1; cx q1,q2; p(-pi/8) q2; cx q0,q2; p(pi/8) q2; cx q1,q2; p(-pi/8) q2; cx q0,q2; cx q2,q3; p(-pi/8) q3; cx q1,q3; p(pi/8) q3; cx q2,q3; p(-pi/8) q3; cx q0,q3; p(pi/8) q3; cx q2,q3; p(-pi/8) q3; cx q1,q3; p(pi/8) q3; cx q2,q3; p(-pi/8) q3; cx q0,q3; h q3; }
gate mcx_13 q0,q1,q2,q3,q4,q5,q6 { h q6; cp(pi/2) q5,q6; cp(pi/4) q4,q6; crx(pi/2) q4,q5; cp(pi/8) q3,q6; crx(pi/4) q3,q5; cp(pi/16) q2,q6; crx(pi/2) q3,q4; crx(pi/8) q2,q5; cp(pi/32) q1,q6; crx(pi/4) q2,q4; crx(pi/16) q1,q5; cp(pi/32) q0,q6; crx(pi/2) q2,q3; crx(pi/8) q1,q4; crx(pi/16) q0,q5; crx(pi/4) q1,q3; crx(pi/8) q0,q4; crx(pi/2) q1,q2; crx(pi/4) q0,q3; crx(pi/2) q0,q2; crx(pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; crx(-pi/16) q1,q5; crx(-pi/2) q3,q4; crx(-pi/8) q2,q5; cp(-pi/32) q1,q6; crx(-pi/4) q3,q5; cp(-pi/16) q2,q6; crx(-pi/2) q4,q5; cp(-pi/8) q3,q6; cp(-pi/4) q4,q6; cp(-pi/2) q5,q6; crx(pi/2) q4,q5; crx(pi/4) q3,q5; crx(pi/2) q3,q4; crx(pi/8) q2,q5; crx(pi/4) q2,q4; crx(pi/16) q1,q5; crx(pi/2) q2,q3; crx(pi/8) q1,q4; crx(-pi/16) q0,q5; crx(pi/4) q1,q3; crx(-pi/8) q0,q4; crx(pi/2) q1,q2; crx(-pi/4) q0,q3; crx(-pi/2) q0,q2; crx(-pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; crx(-pi/16) q1,q5; crx(-pi/2) q3,q4; crx(-pi/8) q2,q5; crx(-pi/4) q3,q5; crx(-pi/2) q4,q5; h q6; }
gate mcx_14 q0,q1,q2,q3,q4,q5 { h q5; cp(pi/2) q4,q5; cp(pi/4) q3,q5; crx(pi/2) q3,q4; cp(pi/8) q2,q5; crx(pi/4) q2,q4; cp(pi/16) q1,q5; crx(pi/2) q2,q3; crx(pi/8) q1,q4; cp(pi/16) q0,q5; crx(pi/4) q1,q3; crx(pi/8) q0,q4; crx(pi/2) q1,q2; crx(pi/4) q0,q3; crx(pi/2) q0,q2; crx(pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; cp(-pi/16) q1,q5; crx(-pi/2) q3,q4; cp(-pi/8) q2,q5; cp(-pi/4) q3,q5; cp(-pi/2) q4,q5; crx(pi/2) q3,q4; crx(pi/4) q2,q4; crx(pi/2) q2,q3; crx(pi/8) q1,q4; crx(pi/4) q1,q3; crx(-pi/8) q0,q4; crx(pi/2) q1,q2; crx(-pi/4) q0,q3; crx(-pi/2) q0,q2; crx(-pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; crx(-pi/2) q3,q4; h q5; }
gate mcx_15 q0,q1,q2,q3,q4 { h q4; cp(pi/2) q3,q4; h q4; h q3; t q3; cx q2,q3; tdg q3; h q3; cx q0,q3; t q3; cx q1,q3; tdg q3; cx q0,q3; t q3; cx q1,q3; tdg q3; h q3; t q3; cx q2,q3; tdg q3; h q3; h q4; cp(-pi/2) q3,q4; h q4; h q3; t q3; cx q2,q3; tdg q3; h q3; t q3; cx q1,q3; tdg q3; cx q0,q3; t q3; cx q1,q3; tdg q3; cx q0,q3; h q3; t q3; cx q2,q3; tdg q3; h q3; h q4; cp(pi/8) q0,q4; h q4; cx q0,q1; h q4; cp(-pi/8) q1,q4; h q4; cx q0,q1; h q4; cp(pi/8) q1,q4; h q4; cx q1,q2; h q4; cp(-pi/8) q2,q4; h q4; cx q0,q2; h q4; cp(pi/8) q2,q4; h q4; cx q1,q2; h q4; cp(-pi/8) q2,q4; h q4; cx q0,q2; h q4; cp(pi/8) q2,q4; h q4; }
gate mcx_16 q0,q1,q2,q3 { h q3; p(pi/8) q0; p(pi/8) q1; p(pi/8) q2; p(pi/8) q3; cx q0,q1; p(-pi/8) q1; cx q0,q1; cx q1,q2; p(-pi/8) q2; cx q0,q2; p(pi/8) q2; cx q1,q2; p(-pi/8) q2; cx q0,q2; cx q2,q3; p(-pi/8) q3; cx q1,q3; p(pi/8) q3; cx q2,q3; p(-pi/8) q3; cx q0,q3; p(pi/8) q3; cx q2,q3; p(-pi/8) q3; cx q1,q3; p(pi/8) q3; cx q2,q3; p(-pi/8) q3; cx q0,q3; h q3; }
gate mcx_17 q0,q1,q2,q3,q4,q5,q6 { h q6; cp(pi/2) q5,q6; cp(pi/4) q4,q6; crx(pi/2) q4,q5; cp(pi/8) q3,q6; crx(pi/4) q3,q5; cp(pi/16) q2,q6; crx(pi/2) q3,q4; crx(pi/8) q2,q5; cp(pi/32) q1,q6; crx(pi/4) q2,q4; crx(pi/16) q1,q5; cp(pi/32) q0,q6; crx(pi/2) q2,q3; crx(pi/8) q1,q4; crx(pi/16) q0,q5; crx(pi/4) q1,q3; crx(pi/8) q0,q4; crx(pi/2) q1,q2; crx(pi/4) q0,q3; crx(pi/2) q0,q2; crx(pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; crx(-pi/16) q1,q5; crx(-pi/2) q3,q4; crx(-pi/8) q2,q5; cp(-pi/32) q1,q6; crx(-pi/4) q3,q5; cp(-pi/16) q2,q6; crx(-pi/2) q4,q5; cp(-pi/8) q3,q6; cp(-pi/4) q4,q6; cp(-pi/2) q5,q6; crx(pi/2) q4,q5; crx(pi/4) q3,q5; crx(pi/2) q3,q4; crx(pi/8) q2,q5; crx(pi/4) q2,q4; crx(pi/16) q1,q5; crx(pi/2) q2,q3; crx(pi/8) q1,q4; crx(-pi/16) q0,q5; crx(pi/4) q1,q3; crx(-pi/8) q0,q4; crx(pi/2) q1,q2; crx(-pi/4) q0,q3; crx(-pi/2) q0,q2; crx(-pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; crx(-pi/16) q1,q5; crx(-pi/2) q3,q4; crx(-pi/8) q2,q5; crx(-pi/4) q3,q5; crx(-pi/2) q4,q5; h q6; }
gate mcx_18 q0,q1,q2,q3,q4,q5 { h q5; cp(pi/2) q4,q5; cp(pi/4) q3,q5; crx(pi/2) q3,q4; cp(pi/8) q2,q5; crx(pi/4) q2,q4; cp(pi/16) q1,q5; crx(pi/2) q2,q3; crx(pi/8) q1,q4; cp(pi/16) q0,q5; crx(pi/4) q1,q3; crx(pi/8) q0,q4; crx(pi/2) q1,q2; crx(pi/4) q0,q3; crx(pi/2) q0,q2; crx(pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; cp(-pi/16) q1,q5; crx(-pi/2) q3,q4; cp(-pi/8) q2,q5; cp(-pi/4) q3,q5; cp(-pi/2) q4,q5; crx(pi/2) q3,q4; crx(pi/4) q2,q4; crx(pi/2) q2,q3; crx(pi/8) q1,q4; crx(pi/4) q1,q3; crx(-pi/8) q0,q4; crx(pi/2) q1,q2; crx(-pi/4) q0,q3; crx(-pi/2) q0,q2; crx(-pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; crx(-pi/2) q3,q4; h q5; }
gate mcx_19 q0,q1,q2,q3,q4 { h q4; cp(pi/2) q3,q4; h q4; h q3; t q3; cx q2,q3; tdg q3; h q3; cx q0,q3; t q3; cx q1,q3; tdg q3; cx q0,q3; t q3; cx q1,q3; tdg q3; h q3; t q3; cx q2,q3; tdg q3; h q3; h q4; cp(-pi/2) q3,q4; h q4; h q3; t q3; cx q2,q3; tdg q3; h q3; t q3; cx q1,q3; tdg q3; cx q0,q3; t q3; cx q1,q3; tdg q3; cx q0,q3; h q3; t q3; cx q2,q3; tdg q3; h q3; h q4; cp(pi/8) q0,q4; h q4; cx q0,q1; h q4; cp(-pi/8) q1,q4; h q4; cx q0,q1; h q4; cp(pi/8) q1,q4; h q4; cx q1,q2; h q4; cp(-pi/8) q2,q4; h q4; cx q0,q2; h q4; cp(pi/8) q2,q4; h q4; cx q1,q2; h q4; cp(-pi/8) q2,q4; h q4; cx q0,q2; h q4; cp(pi/8) q2,q4; h q4; }
gate mcx_20 q0,q1,q2,q3 { h q3; p(pi/8) q0; p(pi/8) q1; p(pi/8) q2; p(pi/8) q3; cx q0,q1; p(-pi/8) q1; cx q0,q1; cx q1,q2; p(-pi/8) q2; cx q0,q2; p(pi/8) q2; cx q1,q2; p(-pi/8) q2; cx q0,q2; cx q2,q3; p(-pi/8) q3; cx q1,q3; p(pi/8) q3; cx q2,q3; p(-pi/8) q3; cx q0,q3; p(pi/8) q3; cx q2,q3; p(-pi/8) q3; cx q1,q3; p(pi/8) q3; cx q2,q3; p(-pi/8) q3; cx q0,q3; h q3; }
gate mcx_21 q0,q1,q2,q3,q4,q5,q6 { h q6; cp(pi/2) q5,q6; cp(pi/4) q4,q6; crx(pi/2) q4,q5; cp(pi/8) q3,q6; crx(pi/4) q3,q5; cp(pi/16) q2,q6; crx(pi/2) q3,q4; crx(pi/8) q2,q5; cp(pi/32) q1,q6; crx(pi/4) q2,q4; crx(pi/16) q1,q5; cp(pi/32) q0,q6; crx(pi/2) q2,q3; crx(pi/8) q1,q4; crx(pi/16) q0,q5; crx(pi/4) q1,q3; crx(pi/8) q0,q4; crx(pi/2) q1,q2; crx(pi/4) q0,q3; crx(pi/2) q0,q2; crx(pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; crx(-pi/16) q1,q5; crx(-pi/2) q3,q4; crx(-pi/8) q2,q5; cp(-pi/32) q1,q6; crx(-pi/4) q3,q5; cp(-pi/16) q2,q6; crx(-pi/2) q4,q5; cp(-pi/8) q3,q6; cp(-pi/4) q4,q6; cp(-pi/2) q5,q6; crx(pi/2) q4,q5; crx(pi/4) q3,q5; crx(pi/2) q3,q4; crx(pi/8) q2,q5; crx(pi/4) q2,q4; crx(pi/16) q1,q5; crx(pi/2) q2,q3; crx(pi/8) q1,q4; crx(-pi/16) q0,q5; crx(pi/4) q1,q3; crx(-pi/8) q0,q4; crx(pi/2) q1,q2; crx(-pi/4) q0,q3; crx(-pi/2) q0,q2; crx(-pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; crx(-pi/16) q1,q5; crx(-pi/2) q3,q4; crx(-pi/8) q2,q5; crx(-pi/4) q3,q5; crx(-pi/2) q4,q5; h q6; }
gate mcx_22 q0,q1,q2,q3,q4,q5 { h q5; cp(pi/2) q4,q5; cp(pi/4) q3,q5; crx(pi/2) q3,q4; cp(pi/8) q2,q5; crx(pi/4) q2,q4; cp(pi/16) q1,q5; crx(pi/2) q2,q3; crx(pi/8) q1,q4; cp(pi/16) q0,q5; crx(pi/4) q1,q3; crx(pi/8) q0,q4; crx(pi/2) q1,q2; crx(pi/4) q0,q3; crx(pi/2) q0,q2; crx(pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; cp(-pi/16) q1,q5; crx(-pi/2) q3,q4; cp(-pi/8) q2,q5; cp(-pi/4) q3,q5; cp(-pi/2) q4,q5; crx(pi/2) q3,q4; crx(pi/4) q2,q4; crx(pi/2) q2,q3; crx(pi/8) q1,q4; crx(pi/4) q1,q3; crx(-pi/8) q0,q4; crx(pi/2) q1,q2; crx(-pi/4) q0,q3; crx(-pi/2) q0,q2; crx(-pi) q0,q1; crx(-pi/2) q1,q2; crx(-pi/4) q1,q3; crx(-pi/2) q2,q3; crx(-pi/8) q1,q4; crx(-pi/4) q2,q4; crx(-pi/2) q3,q4; h q5; }
gate mcx_23 q0,q1,q2,q3,q4 { h q4; cp(pi/2) q3,q4; h q4; h q3; t q3; cx q2,q3; tdg q3; h q3; cx q0,q3; t q3; cx q1,q3; tdg q3; cx q0,q3; t q3; cx q1,q3; tdg q3; h q3; t q3; cx q2,q3; tdg q3; h q3; h q4; cp(-pi/2) q3,q4; h q4; h q3; t q3; cx q2,q3; tdg q3; h q3; t q3; cx q1,q3; tdg q3; cx q0,q3; t q3; cx q1,q3; tdg q3; cx q0,q3; h q3; t q3; cx q2,q3; tdg q3; h q3; h q4; cp(pi/8) q0,q4; h q4; cx q0,q1; h q4; cp(-pi/8) q1,q4; h q4; cx q0,q1; h q4; cp(pi/8) q1,q4; h q4; cx q1,q2; h q4; cp(-pi/8) q2,q4; h q4; cx q0,q2; h q4; cp(pi/8) q2,q4; h q4; cx q1,q2; h q4; cp(-pi/8) q2,q4; h q4; cx q0,q2; h q4; cp(pi/8) q2,q4; h q4; }
gate mcx_24 q0,q1,q2,q3 { h q3; p(pi/8) q0; p(pi/8) q1; p(pi/8) q2; p(pi/8) q3; cx q0,q1; p(-pi/8) q1; cx q0,q1; cx q1,q2; p(-pi/8) q2; cx q0,q2; p(pi/8) q2; cx q1,q2; p(-pi/8) q2; cx q0,q2; cx q2,q3; p(-pi/8) q3; cx q1,q3; p(pi/8) q3; cx q2,q3; p(-pi/8) q3; cx q0,q3; p(pi/8) q3; cx q2,q3; p(-pi/8) q3; cx q1,q3; p(pi/8) q3; cx q2,q3; p(-pi/8) q3; cx q0,q3; h q3; }
qreg node[7];
qreg coin[1];
creg meas[8];
h coin[0];
mcx coin[0],node[1],node[2],node[3],node[4],node[5],node[6],node[0];
mcx_1 coin[0],node[2],node[3],node[4],node[5],node[6],node[1];
mcx_2 coin[0],node[3],node[4],node[5],node[6],node[2];
mcx_3 coin[0],node[4],node[5],node[6],node[3];
mcx_4 coin[0],node[5],node[6],node[4];
ccx coin[0],node[6],node[5];
cx coin[0],node[6];
x coin[0];
x node[1];
x node[2];
x node[3];
x node[4];
x node[5];
x node[6];
mcx coin[0],node[1],node[2],node[3],node[4],node[5],node[6],node[0];
mcx_5 coin[0],node[2],node[3],node[4],node[5],node[6],node[1];
mcx_6 coin[0],node[3],node[4],node[5],node[6],node[2];
mcx_7 coin[0],node[4],node[5],node[6],node[3];
mcx_8 coin[0],node[5],node[6],node[4];
ccx coin[0],node[6],node[5];
cx coin[0],node[6];
x node[1];
x node[2];
x node[3];
x node[4];
x node[5];
x node[6];
x coin[0];
h coin[0];
mcx coin[0],node[1],node[2],node[3],node[4],node[5],node[6],node[0];
mcx_9 coin[0],node[2],node[3],node[4],node[5],node[6],node[1];
mcx_10 coin[0],node[3],node[4],node[5],node[6],node[2];
mcx_11 coin[0],node[4],node[5],node[6],node[3];
mcx_12 coin[0],node[5],node[6],node[4];
ccx coin[0],node[6],node[5];
cx coin[0],node[6];
x coin[0];
x node[1];
x node[2];
x node[3];
x node[4];
x node[5];
x node[6];
mcx coin[0],node[1],node[2],node[3],node[4],node[5],node[6],node[0];
mcx_13 coin[0],node[2],node[3],node[4],node[5],node[6],node[1];
mcx_14 coin[0],node[3],node[4],node[5],node[6],node[2];
mcx_15 coin[0],node[4],node[5],node[6],node[3];
mcx_16 coin[0],node[5],node[6],node[4];
ccx coin[0],node[6],node[5];
cx coin[0],node[6];
x node[1];
x node[2];
x node[3];
x node[4];
x node[5];
x node[6];
x coin[0];
h coin[0];
mcx coin[0],node[1],node[2],node[3],node[4],node[5],node[6],node[0];
mcx_17 coin[0],node[2],node[3],node[4],node[5],node[6],node[1];
mcx_18 coin[0],node[3],node[4],node[5],node[6],node[2];
mcx_19 coin[0],node[4],node[5],node[6],node[3];
mcx_20 coin[0],node[5],node[6],node[4];
ccx coin[0],node[6],node[5];
cx coin[0],node[6];
x coin[0];
x node[1];
x node[2];
x node[3];
x node[4];
x node[5];
x node[6];
mcx coin[0],node[1],node[2],node[3],node[4],node[5],node[6],node[0];
mcx_21 coin[0],node[2],node[3],node[4],node[5],node[6],node[1];
mcx_22 coin[0],node[3],node[4],node[5],node[6],node[2];
mcx_23 coin[0],node[4],node[5],node[6],node[3];
mcx_24 coin[0],node[5],node[6],node[4];
ccx coin[0],node[6],node[5];
cx coin[0],node[6];
x node[1];
x node[2];
x node[3];
x node[4];
x node[5];
x node[6];
x coin[0];
barrier node[0],node[1],node[2],node[3],node[4],node[5],node[6],coin[0];
measure node[0] -> meas[0];
measure node[1] -> meas[1];
measure node[2] -> meas[2];
measure node[3] -> meas[3];
measure node[4] -> meas[4];
measure node[5] -> meas[5];
measure node[6] -> meas[6];
measure coin[0] -> meas[7];
