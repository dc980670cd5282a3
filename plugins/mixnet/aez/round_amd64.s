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

// ROUND8 applies one AES round with round key K to X0..X7. The eight
// AESENCs are independent, so the CPU overlaps them.
#define ROUND8(K) \
	AESENC K, X0; \
	AESENC K, X1; \
	AESENC K, X2; \
	AESENC K, X3; \
	AESENC K, X4; \
	AESENC K, X5; \
	AESENC K, X6; \
	AESENC K, X7

// The AEZ-core passes keep AES4's round keys in X8 = J, X9 = I, X10 = L,
// X11 = 0 (state.aes4Keys, in that order). I is also the offset of
// E^{0,0}. X13 holds 2^ceil(i/8)·I for the group of pairs, X12 the running
// XOR (X in pass 1, Y in pass 2) and X14 is scratch. Pair p sits at
// 32*p(DI): its first block at 32*p, its second at 32*p+16.

// AES4X8 is AES4 (four rounds: J, I, L, 0) on X0..X7.
#define AES4X8 \
	ROUND8(X8); \
	ROUND8(X9); \
	ROUND8(X10); \
	ROUND8(X11)

// AES4X1 is AES4 on the one register R.
#define AES4X1(R) \
	AESENC X8, R; \
	AESENC X9, R; \
	AESENC X10, R; \
	AESENC X11, R

#define LOADKEYS \
	MOVOU 0(BX), X8; \
	MOVOU 16(BX), X9; \
	MOVOU 32(BX), X10; \
	MOVOU 48(BX), X11; \
	MOVOU (DX), X13; \
	MOVOU (AX), X12

// Pass 1, pair p = (Xi, Xi'), with lo[p] at 16*p(SI):
// P1IN:  R = Xi' ⊕ lo[p] ⊕ ik, the input of E^{1,i}(Xi').
#define P1IN(p, R) \
	MOVOU (32*p+16)(DI), R; \
	MOVOU (16*p)(SI), X14; \
	PXOR  X14, R; \
	PXOR  X13, R

// P1MID: Wi = Xi ⊕ R, stored over Xi; R = Wi ⊕ I, the input of E^{0,0}(Wi).
#define P1MID(p, R) \
	MOVOU (32*p)(DI), X14; \
	PXOR  X14, R; \
	MOVOU R, (32*p)(DI); \
	PXOR  X9, R

// P1OUT: Xi'' = Xi' ⊕ R, stored over Xi' and folded into X12.
#define P1OUT(p, R) \
	MOVOU (32*p+16)(DI), X14; \
	PXOR  X14, R; \
	MOVOU R, (32*p+16)(DI); \
	PXOR  R, X12

// func corePass1Asm(pairs *byte, n int, lo *[8]block, ik *block, keys *[4]block, x *block)
TEXT ·corePass1Asm(SB), NOSPLIT, $0-48
	MOVQ pairs+0(FP), DI
	MOVQ n+8(FP), CX
	MOVQ lo+16(FP), SI
	MOVQ ik+24(FP), DX
	MOVQ keys+32(FP), BX
	MOVQ x+40(FP), AX
	LOADKEYS
	CMPQ CX, $8
	JNE  p1one

	P1IN(0, X0)
	P1IN(1, X1)
	P1IN(2, X2)
	P1IN(3, X3)
	P1IN(4, X4)
	P1IN(5, X5)
	P1IN(6, X6)
	P1IN(7, X7)
	AES4X8
	P1MID(0, X0)
	P1MID(1, X1)
	P1MID(2, X2)
	P1MID(3, X3)
	P1MID(4, X4)
	P1MID(5, X5)
	P1MID(6, X6)
	P1MID(7, X7)
	AES4X8
	P1OUT(0, X0)
	P1OUT(1, X1)
	P1OUT(2, X2)
	P1OUT(3, X3)
	P1OUT(4, X4)
	P1OUT(5, X5)
	P1OUT(6, X6)
	P1OUT(7, X7)
	JMP p1done

p1one:
	// Fewer than eight pairs (the last group): one pair at a time.
	TESTQ CX, CX
	JZ    p1done

p1loop:
	P1IN(0, X0)
	AES4X1(X0)
	P1MID(0, X0)
	AES4X1(X0)
	P1OUT(0, X0)
	ADDQ $32, DI
	ADDQ $16, SI
	DECQ CX
	JNZ  p1loop

p1done:
	MOVOU X12, (AX)
	RET

// Pass 2, pair p = (Wi, Xi''), with lo1[p] at 16*p(SI), lo2[p] at 16*p(R8):
// P2IN: R = lo2[p] ⊕ ik = S ⊕ 2·J ⊕ 2^ceil(i/8)·I ⊕ (i mod 8)·L, the input of
// E^{2,i}(S).
#define P2IN(p, R) \
	MOVOU (16*p)(R8), R; \
	PXOR  X13, R

// P2A: Wi' = Wi ⊕ R, stored over Wi and folded into X12; Xi''' = Xi'' ⊕ R,
// stored over Xi''; R = Xi''' ⊕ I, the input of E^{0,0}(Xi''').
#define P2A(p, R) \
	MOVOU (32*p)(DI), X14; \
	PXOR  R, X14; \
	MOVOU X14, (32*p)(DI); \
	PXOR  X14, X12; \
	MOVOU (32*p+16)(DI), X14; \
	PXOR  X14, R; \
	MOVOU R, (32*p+16)(DI); \
	PXOR  X9, R

// P2B: Ci' = Wi' ⊕ R, stored over Wi'; R = Ci' ⊕ lo1[p] ⊕ ik, the input of
// E^{1,i}(Ci').
#define P2B(p, R) \
	MOVOU (32*p)(DI), X14; \
	PXOR  X14, R; \
	MOVOU R, (32*p)(DI); \
	MOVOU (16*p)(SI), X14; \
	PXOR  X14, R; \
	PXOR  X13, R

// P2C: Ci = Xi''' ⊕ R; the pair becomes Ci ‖ Ci'.
#define P2C(p, R) \
	MOVOU (32*p+16)(DI), X14; \
	PXOR  X14, R; \
	MOVOU (32*p)(DI), X14; \
	MOVOU X14, (32*p+16)(DI); \
	MOVOU R, (32*p)(DI)

// func corePass2Asm(pairs *byte, n int, lo1 *[8]block, lo2 *[8]block, ik *block, keys *[4]block, y *block)
TEXT ·corePass2Asm(SB), NOSPLIT, $0-56
	MOVQ pairs+0(FP), DI
	MOVQ n+8(FP), CX
	MOVQ lo1+16(FP), SI
	MOVQ lo2+24(FP), R8
	MOVQ ik+32(FP), DX
	MOVQ keys+40(FP), BX
	MOVQ y+48(FP), AX
	LOADKEYS
	CMPQ CX, $8
	JNE  p2one

	P2IN(0, X0)
	P2IN(1, X1)
	P2IN(2, X2)
	P2IN(3, X3)
	P2IN(4, X4)
	P2IN(5, X5)
	P2IN(6, X6)
	P2IN(7, X7)
	AES4X8
	P2A(0, X0)
	P2A(1, X1)
	P2A(2, X2)
	P2A(3, X3)
	P2A(4, X4)
	P2A(5, X5)
	P2A(6, X6)
	P2A(7, X7)
	AES4X8
	P2B(0, X0)
	P2B(1, X1)
	P2B(2, X2)
	P2B(3, X3)
	P2B(4, X4)
	P2B(5, X5)
	P2B(6, X6)
	P2B(7, X7)
	AES4X8
	P2C(0, X0)
	P2C(1, X1)
	P2C(2, X2)
	P2C(3, X3)
	P2C(4, X4)
	P2C(5, X5)
	P2C(6, X6)
	P2C(7, X7)
	JMP p2done

p2one:
	// Fewer than eight pairs (the last group): one pair at a time.
	TESTQ CX, CX
	JZ    p2done

p2loop:
	P2IN(0, X0)
	AES4X1(X0)
	P2A(0, X0)
	AES4X1(X0)
	P2B(0, X0)
	AES4X1(X0)
	P2C(0, X0)
	ADDQ $32, DI
	ADDQ $16, SI
	ADDQ $16, R8
	DECQ CX
	JNZ  p2loop

p2done:
	MOVOU X12, (AX)
	RET

// func aesenc8Asm(x *[8]block, keys *block, n int)
TEXT ·aesenc8Asm(SB), NOSPLIT, $0-24
	MOVQ  x+0(FP), AX
	MOVQ  keys+8(FP), BX
	MOVQ  n+16(FP), CX
	MOVOU 0(AX), X0
	MOVOU 16(AX), X1
	MOVOU 32(AX), X2
	MOVOU 48(AX), X3
	MOVOU 64(AX), X4
	MOVOU 80(AX), X5
	MOVOU 96(AX), X6
	MOVOU 112(AX), X7

loop8:
	TESTQ CX, CX
	JZ    done8
	MOVOU (BX), X8
	ROUND8(X8)
	ADDQ  $16, BX
	DECQ  CX
	JMP   loop8

done8:
	MOVOU X0, 0(AX)
	MOVOU X1, 16(AX)
	MOVOU X2, 32(AX)
	MOVOU X3, 48(AX)
	MOVOU X4, 64(AX)
	MOVOU X5, 80(AX)
	MOVOU X6, 96(AX)
	MOVOU X7, 112(AX)
	RET
