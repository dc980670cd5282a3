package aez

// The serial AEZ-core, AEZ-hash and AEZ-prf: one block per E call, in the
// order the specification writes them, as the package first implemented
// them (and as they passed the vector files). The multi-block code in
// core.go and aez.go is checked against them (multiblock_test.go).

// tweak holds the offset of E^{j,i} for j >= 0 and lets the serial loops
// over i step it without recomputing 2^ceil(i/8)·I from the start.
type tweak struct {
	s    *state
	jj   block // j·J
	ipow block // 2^ceil(i/8)·I
	i    uint
}

func (s *state) tweak(j int, i uint) *tweak {
	t := &tweak{s: s, jj: mulBlock(uint(j), &s.j), ipow: s.i, i: i}
	for n := (i + 7) / 8; n > 0; n-- {
		double(&t.ipow)
	}
	return t
}

// next advances the tweak from i to i+1.
func (t *tweak) next() {
	t.i++
	if t.i%8 == 1 {
		double(&t.ipow)
	}
}

// enc returns E^{j,i}(x) = AES4(x ⊕ j·J ⊕ 2^ceil(i/8)·I ⊕ (i mod 8)·L).
func (t *tweak) enc(x *block) block {
	y := *x
	xorInto(y[:], t.jj[:])
	xorInto(y[:], t.ipow[:])
	xorInto(y[:], t.s.lmul[t.i%8][:])
	t.s.aes4(&y)
	return y
}

// coreSerial is the serial AEZ-core, enciphering (d = 0) or deciphering
// (d = 1) buf in place; len(buf) >= 32. buf is X1 X1' ... Xm Xm' Xuv Xx Xy with |Xuv| < 32.
func (s *state) coreSerial(delta *block, buf []byte, d uint) {
	n := len(buf)
	m := (n - 32) / 32
	frag := buf[32*m : n-32]
	tail := buf[n-32:]

	// Pass 1: Wi = Xi ⊕ E^{1,i}(Xi'), Xi'' = Xi' ⊕ E^{0,0}(Wi); X = ⊕ Xi''.
	var x block
	t00 := s.tweak(0, 0)
	t1 := s.tweak(1, 1)
	for p := 0; p < m; p++ {
		pair := buf[32*p : 32*p+32]
		a, b := load(pair[:16]), load(pair[16:])
		f := t1.enc(&b)
		w := xorBlocks(&a, &f)
		g := t00.enc(&w)
		xx := xorBlocks(&b, &g)
		copy(pair[:16], w[:])
		copy(pair[16:], xx[:])
		xorInto(x[:], xx[:])
		t1.next()
	}
	switch {
	case len(frag) >= blockSize:
		u := load(frag[:16])
		v := pad10(frag[16:])
		eu, ev := s.e(0, 4, &u), s.e(0, 5, &v)
		xorInto(x[:], eu[:])
		xorInto(x[:], ev[:])
	case len(frag) > 0:
		u := pad10(frag)
		eu := s.e(0, 4, &u)
		xorInto(x[:], eu[:])
	}

	// The middle: Sx = Xx ⊕ X ⊕ Δ ⊕ E^{0,1+d}(Xy), Sy = Xy ⊕ E^{-1,1+d}(Sx).
	xx, xy := load(tail[:16]), load(tail[16:])
	sx := s.e(0, 1+d, &xy)
	xorInto(sx[:], xx[:])
	xorInto(sx[:], x[:])
	xorInto(sx[:], delta[:])
	sy := s.e(-1, 1+d, &sx)
	xorInto(sy[:], xy[:])
	ss := xorBlocks(&sx, &sy)

	// Pass 2.
	var y block
	t1 = s.tweak(1, 1)
	t2 := s.tweak(2, 1)
	for p := 0; p < m; p++ {
		pair := buf[32*p : 32*p+32]
		w, xi := load(pair[:16]), load(pair[16:])
		sp := t2.enc(&ss)
		xorInto(w[:], sp[:])
		xorInto(xi[:], sp[:])
		xorInto(y[:], w[:])
		g := t00.enc(&xi)
		cp := xorBlocks(&w, &g)
		f := t1.enc(&cp)
		c := xorBlocks(&xi, &f)
		copy(pair[:16], c[:])
		copy(pair[16:], cp[:])
		t1.next()
		t2.next()
	}
	switch {
	case len(frag) >= blockSize:
		k4 := s.e(-1, 4, &ss)
		xorInto(frag[:16], k4[:])
		u := load(frag[:16])
		eu := s.e(0, 4, &u)
		xorInto(y[:], eu[:])
		k5 := s.e(-1, 5, &ss)
		xorInto(frag[16:], k5[:len(frag)-16])
		v := pad10(frag[16:])
		ev := s.e(0, 5, &v)
		xorInto(y[:], ev[:])
	case len(frag) > 0:
		k4 := s.e(-1, 4, &ss)
		xorInto(frag, k4[:len(frag)])
		u := pad10(frag)
		eu := s.e(0, 4, &u)
		xorInto(y[:], eu[:])
	}

	// Cy = Sx ⊕ E^{-1,2-d}(Sy), Cx = Sy ⊕ E^{0,2-d}(Cy) ⊕ Δ ⊕ Y.
	cy := s.e(-1, 2-d, &sy)
	xorInto(cy[:], sx[:])
	cx := s.e(0, 2-d, &cy)
	xorInto(cx[:], sy[:])
	xorInto(cx[:], delta[:])
	xorInto(cx[:], y[:])
	copy(tail[:16], cx[:])
	copy(tail[16:], cy[:])
}

// hashStringSerial folds one string into sum with tweak j: full blocks under
// E^{j,1}, E^{j,2}, ...; a final partial (or the only, empty) block padded
// with 10* under E^{j,0}.
func (s *state) hashStringSerial(sum *block, j int, x []byte) {
	t := s.tweak(j, 1)
	for len(x) >= blockSize {
		var b block
		copy(b[:], x)
		y := t.enc(&b)
		xorInto(sum[:], y[:])
		t.next()
		x = x[blockSize:]
	}
	if len(x) > 0 || t.i == 1 {
		var b block
		copy(b[:], x)
		b[len(x)] = 0x80
		y := s.e(j, 0, &b)
		xorInto(sum[:], y[:])
	}
}

// hashSerial is AEZ-hash over the tweak (tauBits, nonce, ad...): tauBits as a
// 128-bit big-endian block under E^{3,1}, the nonce with j = 4 and the i-th
// AD string with j = 5+i.
func (s *state) hashSerial(tauBits uint64, nonce []byte, ad [][]byte) block {
	var tb block
	for n := 0; n < 8; n++ {
		tb[15-n] = byte(tauBits >> (8 * uint(n)))
	}
	sum := s.e(3, 1, &tb)
	s.hashStringSerial(&sum, 4, nonce)
	for k, a := range ad {
		s.hashStringSerial(&sum, 5+k, a)
	}
	return sum
}

// prfSerial is AEZ-prf: the first len(out) bytes of
// E^{-1,3}(Δ ⊕ [0]) ‖ E^{-1,3}(Δ ⊕ [1]) ‖ ..., counters as 128-bit big-endian.
func (s *state) prfSerial(delta *block, out []byte) {
	var ctr block
	for off := 0; off < len(out); off += blockSize {
		x := *delta
		xorInto(x[:], ctr[:])
		y := s.e(-1, 3, &x)
		copy(out[off:], y[:])
		for n := blockSize - 1; n >= 0; n-- {
			ctr[n]++
			if ctr[n] != 0 {
				break
			}
		}
	}
}
