package aez

// pad10 returns x (shorter than a block) followed by a 1 bit and zeros.
func pad10(x []byte) block {
	var b block
	copy(b[:], x)
	b[len(x)] = 0x80
	return b
}

func load(x []byte) block {
	var b block
	copy(b[:], x)
	return b
}

func xorBlocks(a, b *block) block {
	r := *a
	xorInto(r[:], b[:])
	return r
}

// groupBytes is the number of bytes of pairs AEZ-core hands to one
// corePass1/corePass2 call: eight pairs, whose blocks are independent and
// so are enciphered interleaved. The pairs i = 8k+1 .. 8k+8 (k = 0, 1, ...)
// of a group also share the I part of their E^{j,i} offsets,
// 2^ceil(i/8)·I = 2^(k+1)·I, and pair p of every group (i = 8k+p+1) has
// the same L part, (i mod 8)·L = lmul[(p+1)%8].
const groupBytes = 8 * 32

// core is AEZ-core, enciphering (d = 0) or deciphering (d = 1) buf in place;
// len(buf) >= 32. buf is X1 X1' ... Xm Xm' Xuv Xx Xy with |Xuv| < 32.
// The m pairs go through the two passes in groups of eight (corePass1,
// corePass2); serial_test.go has the one-block-at-a-time form it is
// checked against.
func (s *state) core(delta *block, buf []byte, d uint) {
	n := len(buf)
	m := (n - 32) / 32
	pairs := buf[:32*m]
	frag := buf[32*m : n-32]
	tail := buf[n-32:]

	// Pass 1: Wi = Xi ⊕ E^{1,i}(Xi'), Xi'' = Xi' ⊕ E^{0,0}(Wi); X = ⊕ Xi''.
	// lo1[p] is the part of E^{1,i}'s offset that repeats in every group:
	// J ⊕ (i mod 8)·L.
	var lo1 [8]block
	for p := range lo1 {
		lo1[p] = xorBlocks(&s.j, &s.lmul[(p+1)%8])
	}
	var x block
	ik := s.i
	for off := 0; off < len(pairs); off += groupBytes {
		double(&ik)
		corePass1(pairs[off:min(off+groupBytes, len(pairs))], &lo1, &ik, &s.aes4Keys, &x)
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

	// Pass 2, with S = Sx ⊕ Sy. lo2[p] is the part of E^{2,i}(S)'s input
	// that repeats in every group: S ⊕ 2·J ⊕ (i mod 8)·L.
	var lo2 [8]block
	j2 := s.j
	double(&j2)
	xorInto(j2[:], ss[:])
	for p := range lo2 {
		lo2[p] = xorBlocks(&j2, &s.lmul[(p+1)%8])
	}
	var y block
	ik = s.i
	for off := 0; off < len(pairs); off += groupBytes {
		double(&ik)
		corePass2(pairs[off:min(off+groupBytes, len(pairs))], &lo1, &lo2, &ik, &s.aes4Keys, &y)
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

// corePass1Generic is AEZ-core's first pass over one group of one to eight
// pairs (pairs holds them whole), in portable Go: for pair p, i = 8k+p+1,
//
//	Wi = Xi ⊕ E^{1,i}(Xi'), Xi'' = Xi' ⊕ E^{0,0}(Wi), x ^= Xi'',
//	pair = Wi ‖ Xi''.
//
// E^{1,i}'s offset is lo[p] ⊕ ik with ik = 2^(k+1)·I; keys is
// state.aes4Keys (J, I, L, 0), whose keys[1] = I is also E^{0,0}'s offset. The assembly (corePass1Asm) computes the same.
func corePass1Generic(pairs []byte, lo *[8]block, ik *block, keys *[4]block, x *block) {
	for p := 0; p < len(pairs)/32; p++ {
		pair := pairs[32*p : 32*p+32]
		f := load(pair[16:])
		xorInto(f[:], lo[p][:])
		xorInto(f[:], ik[:])
		encRoundsGeneric(&f, keys[:])
		xorInto(pair[:16], f[:]) // Wi
		g := load(pair[:16])
		xorInto(g[:], keys[1][:])
		encRoundsGeneric(&g, keys[:])
		xorInto(pair[16:], g[:]) // Xi''
		xorInto(x[:], pair[16:])
	}
}

// corePass2Generic is AEZ-core's second pass over one group of one to
// eight pairs (as pass 1 left them) in portable Go: for pair p, i = 8k+p+1,
//
//	pair = Wi ‖ Xi'',
//	Si = E^{2,i}(S), Wi' = Wi ⊕ Si, Xi''' = Xi'' ⊕ Si, y ^= Wi',
//	Ci' = Wi' ⊕ E^{0,0}(Xi'''), Ci = Xi''' ⊕ E^{1,i}(Ci'),
//	pair = Ci ‖ Ci'.
//
// E^{2,i}(S)'s input is lo2[p] ⊕ ik, E^{1,i}'s
// offset lo1[p] ⊕ ik; keys as for corePass1Generic. The assembly
// (corePass2Asm) computes the same.
func corePass2Generic(pairs []byte, lo1, lo2 *[8]block, ik *block, keys *[4]block, y *block) {
	for p := 0; p < len(pairs)/32; p++ {
		pair := pairs[32*p : 32*p+32]
		si := xorBlocks(&lo2[p], ik)
		encRoundsGeneric(&si, keys[:])
		xorInto(pair[:16], si[:]) // Wi'
		xorInto(y[:], pair[:16])
		xorInto(pair[16:], si[:]) // Xi'''
		g := load(pair[16:])
		xorInto(g[:], keys[1][:])
		encRoundsGeneric(&g, keys[:])
		cp := load(pair[:16])
		xorInto(cp[:], g[:]) // Ci'
		f := xorBlocks(&cp, &lo1[p])
		xorInto(f[:], ik[:])
		encRoundsGeneric(&f, keys[:])
		xorInto(pair[16:], f[:]) // Ci
		copy(pair[:16], pair[16:])
		copy(pair[16:], cp[:])
	}
}

// tiny is AEZ-tiny, a balanced Feistel network over the 4n-bit halves of an
// n-byte input (0 < n < 32), enciphering (d = 0) or deciphering (d = 1) buf
// in place. Halves are kept left-aligned in blocks with the bits past 4n
// zero; for odd n the halves meet in the middle of a byte.
func (s *state) tiny(delta *block, buf []byte, d uint) {
	n := len(buf)
	rounds, ti := 8, uint(6)
	switch {
	case n == 1:
		rounds, ti = 24, 7
	case n == 2:
		rounds, ti = 16, 7
	case n < 16:
		rounds, ti = 10, 7
	}
	half := (n + 1) / 2 // bytes holding a half

	// For n < 16 the first bit is additionally masked by
	// E^{0,3}((Z with its first bit set) ⊕ Δ), after enciphering and before
	// deciphering.
	flipFirst := func() {
		b := load(buf)
		b[0] |= 0x80
		xorInto(b[:], delta[:])
		e := s.e(0, 3, &b)
		buf[0] ^= e[0] & 0x80
	}
	if d == 1 && n < 16 {
		flipFirst()
	}

	var l, r block
	copy(l[:], buf[:half])
	if n%2 == 0 {
		copy(r[:], buf[n/2:])
	} else {
		l[half-1] &= 0xf0
		for k := 0; k < half; k++ {
			hi := buf[n/2+k] << 4
			var lo byte
			if n/2+k+1 < n {
				lo = buf[n/2+k+1] >> 4
			}
			r[k] = hi | lo
		}
	}
	// clear keeps the first 4n bits of a half.
	clear := func(h *block) {
		if n%2 == 1 {
			h[half-1] &= 0xf0
		}
		for k := half; k < blockSize; k++ {
			h[k] = 0
		}
	}
	// rho xors E^{0,ti}(pad(src) ⊕ Δ ⊕ [j]) into dst, keeping 4n bits.
	rho := func(dst, src *block, j int) {
		b := *src
		if n%2 == 0 {
			b[n/2] = 0x80
		} else {
			b[n/2] |= 0x08
		}
		xorInto(b[:], delta[:])
		b[15] ^= byte(j)
		e := s.e(0, ti, &b)
		xorInto(dst[:], e[:])
		clear(dst)
	}
	for k := 0; k < rounds; k++ {
		j := k
		if d == 1 {
			j = rounds - 1 - k
		}
		if k%2 == 0 {
			rho(&l, &r, j)
		} else {
			rho(&r, &l, j)
		}
	}

	// Output R ‖ L.
	if n%2 == 0 {
		copy(buf[:n/2], r[:n/2])
		copy(buf[n/2:], l[:n/2])
	} else {
		copy(buf[:n/2], r[:n/2])
		buf[n/2] = r[n/2]&0xf0 | l[0]>>4
		for k := 1; k < half; k++ {
			buf[n/2+k] = l[k-1]<<4 | l[k]>>4
		}
	}
	if d == 0 && n < 16 {
		flipFirst()
	}
}
