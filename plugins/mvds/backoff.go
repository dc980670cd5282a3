package mvds

// nextEpoch returns the send epoch of a record just sent for the count-th
// time (count >= 1) at epoch: epoch plus base·2^((count-1) mod steps), where
// steps is the number of doublings of base that stay within max.
//
// 2/MVDS says a record's send epoch "SHOULD be exponentially increased
// until reaching an upper bound where it then goes back to a lower epoch";
// this is that sawtooth: with base 2 and max 16 the intervals are 2, 4, 8,
// 16, then 2, 4, 8, 16 again. The send epoch strictly increases with every
// transmission, as the spec requires. The caller keeps 1 <= base <= max.
func nextEpoch(count, epoch, base, max uint64) uint64 {
	return epoch + backoffInterval(count, base, max)
}

// backoffInterval is the wait, in epochs, after the count-th transmission.
func backoffInterval(count, base, max uint64) uint64 {
	if base == 0 {
		base = 1
	}
	if max < base {
		max = base
	}
	steps := uint64(1)
	for base<<steps <= max && steps < 63 {
		steps++
	}
	if count == 0 {
		count = 1
	}
	return base << ((count - 1) % steps)
}
