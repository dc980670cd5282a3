package schedule

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"

	"github.com/strata-msg/strata/plugins/mls/suite"
)

// RatchetType selects one of a leaf's two hash ratchets (RFC 9420 §9.1).
type RatchetType uint8

// The two ratchets of each leaf.
const (
	Handshake   RatchetType = iota // proposals and commits
	Application                    // application data
)

func (t RatchetType) String() string {
	if t == Handshake {
		return "handshake"
	}
	return "application"
}

// Errors of the secret tree. Each is wrapped with the leaf and generation.
var (
	// ErrLeafOutOfRange: the leaf index is not below the tree's leaf count.
	ErrLeafOutOfRange = errors.New("mls/schedule: leaf index out of range")
	// ErrKeyConsumed: the key of this generation was used or deleted (a
	// replay, or a message older than the retained window).
	ErrKeyConsumed = errors.New("mls/schedule: key of this generation already consumed")
	// ErrTooFarAhead: the generation lies further ahead of the ratchet than
	// MaxForward allows.
	ErrTooFarAhead = errors.New("mls/schedule: generation too far ahead")
	// ErrGenerationExhausted: the ratchet reached the last uint32 generation.
	ErrGenerationExhausted = errors.New("mls/schedule: ratchet generations exhausted")
)

// Retention bounds the keys a secret tree keeps for messages that arrive out
// of order (RFC 9420 §9.2 leaves the policy to the application).
type Retention struct {
	// MaxForward is the largest jump, in generations, that a received message
	// may make ahead of a ratchet. Default 1000.
	MaxForward uint32
	// MaxSkipped is the number of skipped keys kept per ratchet for late
	// messages; the oldest go first. Default 256. Negative keeps none.
	MaxSkipped int
}

// DefaultRetention is the retention policy NewSecretTree uses for a zero
// Retention.
var DefaultRetention = Retention{MaxForward: 1000, MaxSkipped: 256}

// KeyNonce is the AEAD key and nonce of one generation of a ratchet.
type KeyNonce struct {
	Generation uint32
	Key, Nonce []byte
}

// Destroy zeroes the key and nonce.
func (k *KeyNonce) Destroy() {
	clear(k.Key)
	clear(k.Nonce)
}

// ratchet is one hash ratchet of a leaf (RFC 9420 §9.1).
type ratchet struct {
	secret  []byte              // ratchet secret of generation next
	next    uint32              // generation the secret belongs to
	done    bool                // the last generation was consumed
	skipped map[uint32]KeyNonce // keys of passed generations kept for late messages
}

// SecretTree derives the message keys of one epoch from its
// encryption_secret (RFC 9420 §9). It deletes each secret as soon as it is
// consumed: an inner node's secret once both children's are derived, a
// leaf's once its two ratchets start, a ratchet secret once the next is
// derived, and a key once it is returned. A SecretTree is not safe for
// concurrent use.
type SecretTree struct {
	suite    *suite.Suite
	nLeaves  uint32
	root     uint32
	keep     Retention
	nodes    map[uint32][]byte // node index → secret, for nodes not yet consumed
	ratchets map[uint32]*[2]ratchet

	// The encoding MarshalBinary writes, in parts kept from one call to
	// the next: a group's state is stored after every batch of messages,
	// and a batch changes the ratchets of a few senders of a large tree.
	// Each part is dropped (and zeroed: it holds secrets) as soon as what
	// it encodes changes.
	leaves   []uint32          // the leaves with ratchets, in order
	enc      map[uint32][]byte // leaf → its entry of the ratchets vector
	nodesEnc []byte            // the body of the nodes vector; nil when stale
}

// NewSecretTree returns the secret tree of a group of nLeaves leaves (the
// ratchet tree's leaf count, blank leaves included) rooted at
// encryptionSecret. The tree takes a copy of the secret; the caller should
// zero its own. A zero keep means DefaultRetention.
func NewSecretTree(s *suite.Suite, encryptionSecret []byte, nLeaves uint32, keep Retention) (*SecretTree, error) {
	if nLeaves == 0 || nLeaves > 1<<31 {
		return nil, fmt.Errorf("mls/schedule: secret tree of %d leaves", nLeaves)
	}
	if keep == (Retention{}) {
		keep = DefaultRetention
	}
	// The root of a tree of n leaves: 2^k - 1 with 2^k the smallest power of
	// two not below n (RFC 9420 Appendix C, root(n)).
	root := uint32(1)<<bits.Len32(nLeaves-1) - 1
	return &SecretTree{
		suite:    s,
		nLeaves:  nLeaves,
		root:     root,
		keep:     keep,
		nodes:    map[uint32][]byte{root: append([]byte(nil), encryptionSecret...)},
		ratchets: map[uint32]*[2]ratchet{},
	}, nil
}

// level is the height of node x in an array-represented tree: the number of
// trailing one bits of its index.
func level(x uint32) int { return bits.TrailingZeros32(^x) }

// leafRatchets returns the two ratchets of leaf, deriving the path from the
// lowest stored ancestor down to the leaf on first use.
func (t *SecretTree) leafRatchets(leaf uint32) (*[2]ratchet, error) {
	if leaf >= t.nLeaves {
		return nil, fmt.Errorf("leaf %d of %d: %w", leaf, t.nLeaves, ErrLeafOutOfRange)
	}
	if r, ok := t.ratchets[leaf]; ok {
		return r, nil
	}
	target := 2 * leaf
	// Walk from the root toward the leaf. A consumed node's children are
	// stored, so the first stored node met is the lowest stored ancestor.
	for x := t.root; x != target; {
		k := level(x)
		left, right := x^(1<<(k-1)), x^(3<<(k-1))
		if secret, ok := t.nodes[x]; ok {
			l, err := t.suite.ExpandWithLabel(secret, "tree", []byte("left"), t.suite.Nh())
			if err != nil {
				return nil, err
			}
			r, err := t.suite.ExpandWithLabel(secret, "tree", []byte("right"), t.suite.Nh())
			if err != nil {
				return nil, err
			}
			clear(secret)
			delete(t.nodes, x)
			t.nodes[left], t.nodes[right] = l, r
			t.dropNodesEnc()
		}
		if target < x {
			x = left
		} else {
			x = right
		}
	}
	secret, ok := t.nodes[target]
	if !ok {
		// Unreachable: a leaf's secret is removed only when its ratchets
		// are created, and ratchets are never removed.
		return nil, fmt.Errorf("leaf %d: secret already consumed", leaf)
	}
	hs, err := t.suite.ExpandWithLabel(secret, "handshake", nil, t.suite.Nh())
	if err != nil {
		return nil, err
	}
	app, err := t.suite.ExpandWithLabel(secret, "application", nil, t.suite.Nh())
	if err != nil {
		return nil, err
	}
	clear(secret)
	delete(t.nodes, target)
	t.dropNodesEnc()
	r := &[2]ratchet{{secret: hs}, {secret: app}}
	t.ratchets[leaf] = r
	i, _ := slices.BinarySearch(t.leaves, leaf)
	t.leaves = slices.Insert(t.leaves, i, leaf)
	return r, nil
}

// dropEnc forgets the kept encoding of leaf's ratchets, zeroing it; every
// change to them calls it before it is made.
func (t *SecretTree) dropEnc(leaf uint32) {
	if e, ok := t.enc[leaf]; ok {
		clear(e)
		delete(t.enc, leaf)
	}
}

// dropNodesEnc forgets the kept encoding of the nodes, zeroing it.
func (t *SecretTree) dropNodesEnc() {
	clear(t.nodesEnc)
	t.nodesEnc = nil
}

// advance returns the key and nonce of the ratchet's current generation and
// advances it to the next (RFC 9420 §9.1), zeroing the old secret.
func (t *SecretTree) advance(r *ratchet) (KeyNonce, error) {
	if r.done {
		return KeyNonce{}, ErrGenerationExhausted
	}
	s, g := t.suite, r.next
	key, err := s.DeriveTreeSecret(r.secret, "key", g, s.Nk())
	if err != nil {
		return KeyNonce{}, err
	}
	nonce, err := s.DeriveTreeSecret(r.secret, "nonce", g, s.Nn())
	if err != nil {
		return KeyNonce{}, err
	}
	if g == ^uint32(0) {
		clear(r.secret)
		r.done = true
		return KeyNonce{Generation: g, Key: key, Nonce: nonce}, nil
	}
	next, err := s.DeriveTreeSecret(r.secret, "secret", g, s.Nh())
	if err != nil {
		return KeyNonce{}, err
	}
	clear(r.secret)
	r.secret, r.next = next, g+1
	return KeyNonce{Generation: g, Key: key, Nonce: nonce}, nil
}

// Next returns the key and nonce of the next unused generation of the
// leaf's ratchet, for a message that leaf sends. The generation is consumed.
func (t *SecretTree) Next(leaf uint32, typ RatchetType) (KeyNonce, error) {
	t.dropEnc(leaf)
	rs, err := t.leafRatchets(leaf)
	if err != nil {
		return KeyNonce{}, fmt.Errorf("mls/schedule: %s key: %w", typ, err)
	}
	kn, err := t.advance(&rs[typ])
	if err != nil {
		return KeyNonce{}, fmt.Errorf("mls/schedule: %s key of leaf %d: %w", typ, leaf, err)
	}
	return kn, nil
}

// Get returns the key and nonce of a given generation of the leaf's ratchet,
// for a message received from that leaf, and consumes them: asking again
// gives ErrKeyConsumed. Generations skipped on the way are kept, within the
// tree's Retention, for messages that arrive late.
func (t *SecretTree) Get(leaf uint32, typ RatchetType, generation uint32) (KeyNonce, error) {
	t.dropEnc(leaf)
	rs, err := t.leafRatchets(leaf)
	if err != nil {
		return KeyNonce{}, fmt.Errorf("mls/schedule: %s key: %w", typ, err)
	}
	r := &rs[typ]
	if r.done || generation < r.next {
		kn, ok := r.skipped[generation]
		if !ok {
			return KeyNonce{}, fmt.Errorf("mls/schedule: %s key of leaf %d generation %d: %w", typ, leaf, generation, ErrKeyConsumed)
		}
		delete(r.skipped, generation)
		return kn, nil
	}
	if generation-r.next > t.keep.MaxForward {
		return KeyNonce{}, fmt.Errorf("mls/schedule: %s key of leaf %d generation %d, ratchet at %d: %w",
			typ, leaf, generation, r.next, ErrTooFarAhead)
	}
	for r.next < generation {
		kn, err := t.advance(r)
		if err != nil {
			return KeyNonce{}, fmt.Errorf("mls/schedule: %s key of leaf %d: %w", typ, leaf, err)
		}
		t.keepSkipped(r, kn, generation)
	}
	kn, err := t.advance(r)
	if err != nil {
		return KeyNonce{}, fmt.Errorf("mls/schedule: %s key of leaf %d: %w", typ, leaf, err)
	}
	return kn, nil
}

// keepSkipped stores the key of a skipped generation if it is among the
// MaxSkipped newest before target, evicting the oldest stored key when full.
func (t *SecretTree) keepSkipped(r *ratchet, kn KeyNonce, target uint32) {
	limit := t.keep.MaxSkipped
	if limit <= 0 || target-kn.Generation > uint32(limit) {
		kn.Destroy()
		return
	}
	if r.skipped == nil {
		r.skipped = map[uint32]KeyNonce{}
	}
	if len(r.skipped) >= limit {
		oldest := kn.Generation
		for g := range r.skipped {
			oldest = min(oldest, g)
		}
		old := r.skipped[oldest]
		old.Destroy()
		delete(r.skipped, oldest)
	}
	r.skipped[kn.Generation] = kn
}

// Destroy zeroes every secret and key the tree still holds. The tree must not
// be used afterwards.
func (t *SecretTree) Destroy() {
	for leaf := range t.enc {
		t.dropEnc(leaf)
	}
	t.dropNodesEnc()
	for x, s := range t.nodes {
		clear(s)
		delete(t.nodes, x)
	}
	for leaf, rs := range t.ratchets {
		for i := range rs {
			clear(rs[i].secret)
			for _, kn := range rs[i].skipped {
				kn.Destroy()
			}
		}
		delete(t.ratchets, leaf)
	}
	t.leaves = nil
}

// SenderDataKeyNonce derives the key and nonce that protect the SenderData of
// a PrivateMessage (RFC 9420 §6.3.2):
//
//	ciphertext_sample = ciphertext[0..Nh-1]   (all of it if shorter)
//	sender_data_key   = ExpandWithLabel(sender_data_secret, "key", ciphertext_sample, Nk)
//	sender_data_nonce = ExpandWithLabel(sender_data_secret, "nonce", ciphertext_sample, Nn)
func SenderDataKeyNonce(s *suite.Suite, senderDataSecret, ciphertext []byte) (key, nonce []byte, err error) {
	sample := ciphertext[:min(len(ciphertext), s.Nh())]
	if key, err = s.ExpandWithLabel(senderDataSecret, "key", sample, s.Nk()); err != nil {
		return nil, nil, fmt.Errorf("mls/schedule: sender data key: %w", err)
	}
	if nonce, err = s.ExpandWithLabel(senderDataSecret, "nonce", sample, s.Nn()); err != nil {
		return nil, nil, fmt.Errorf("mls/schedule: sender data nonce: %w", err)
	}
	return key, nonce, nil
}
