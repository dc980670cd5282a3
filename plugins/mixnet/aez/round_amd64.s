//go:build amd64 && !purego

#include "textflag.h"

// func aesencAsm(x *block, keys *block, n int)
TEXT ·aesencAsm(SB), NOSPLIT, $0-24
	MOVQ  x+0(FP), AX
	MOVQ  keys+8(FP), BX
	MOVQ  n+16(FP), CX
	MOVOU (AX), X0

loop:
	TESTQ CX, CX
	JZ    done
	MOVOU (BX), X1
	AESENC X1, X0
	ADDQ  $16, BX
	DECQ  CX
	JMP   loop

done:
	MOVOU X0, (AX)
	RET
