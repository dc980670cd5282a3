package schedule

import (
	"bytes"
	"fmt"
)

// PutBack returns to the tree the key of a generation that Get handed out
// for a message whose content then did not authenticate, so that the
// genuine message, if it comes, still finds its key. Without it, anyone on
// the network could burn a member's key by changing one byte of a
// PrivateMessage outside the part that keys its sender data (RFC 9420
// §6.3.2 samples only the first Nh bytes of the ciphertext). The key is
// kept like a skipped key, within Retention.MaxSkipped; the tree takes a
// copy. Only a generation the ratchet has passed can be put back.
func (t *SecretTree) PutBack(leaf uint32, typ RatchetType, kn KeyNonce) error {
	rs, ok := t.ratchets[leaf]
	if !ok || int(typ) >= len(rs) {
		return fmt.Errorf("mls/schedule: put back a %s key of leaf %d that was never handed out", typ, leaf)
	}
	t.dropEnc(leaf)
	r := &rs[typ]
	if !r.done && kn.Generation >= r.next {
		return fmt.Errorf("mls/schedule: put back %s key of leaf %d generation %d, ratchet at %d", typ, leaf, kn.Generation, r.next)
	}
	if _, dup := r.skipped[kn.Generation]; dup {
		return fmt.Errorf("mls/schedule: %s key of leaf %d generation %d is already kept", typ, leaf, kn.Generation)
	}
	cp := KeyNonce{Generation: kn.Generation, Key: bytes.Clone(kn.Key), Nonce: bytes.Clone(kn.Nonce)}
	t.keepSkipped(r, cp, kn.Generation)
	return nil
}
