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

// core is AEZ-core, enciphering (d = 0) or deciphering (d = 1) buf in place;
// len(buf) >= 32. buf is X1 X1' ... Xm Xm' Xuv Xx Xy with |Xuv| < 32.
func (s *state) core(delta *block, buf []byte, d uint) {
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
