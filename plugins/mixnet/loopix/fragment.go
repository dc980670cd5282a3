package loopix

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Inner payloads. The sealed user payload of every packet a client sends
// through the network to a mailbox (real fragments and loops alike) opens
// to InnerLength(g) bytes:
//
//	kind (1) ‖ message id (16) ‖ index (u16) ‖ count (u16) ‖ length (u16) ‖ data ‖ zero padding
//
// A message longer than one packet's data is cut into count fragments of
// one message id; the recipient reassembles them (Reassembler). A loop's
// index and count are 0 and 1 and its message id is the loop's id.
const (
	// KindFragment is a fragment of a message.
	KindFragment byte = 0x01
	// KindLoop is a client's loop cover packet, back to itself.
	KindLoop byte = 0x02

	// MessageIDLength is the size of a message id.
	MessageIDLength = 16
	// fragmentHeaderLength is kind, id, index, count and length.
	fragmentHeaderLength = 1 + MessageIDLength + 2 + 2 + 2
	// MaxFragments bounds the fragments of one message.
	MaxFragments = 1 << 12
)

// ErrFragment reports an inner payload or message that does not decode.
var ErrFragment = errors.New("loopix: malformed fragment")

// Fragment is a decoded inner payload.
type Fragment struct {
	Kind  byte
	ID    [MessageIDLength]byte
	Index int
	Count int
	// Data aliases the decoded bytes.
	Data []byte
}

// FragmentDataLength is the message bytes one fragment carries when inner
// payloads are innerLength bytes.
func FragmentDataLength(innerLength int) int { return innerLength - fragmentHeaderLength }

// EncodeFragment writes f into an inner payload of innerLength bytes.
func EncodeFragment(f Fragment, innerLength int) ([]byte, error) {
	if len(f.Data) > FragmentDataLength(innerLength) || f.Count < 1 || f.Count > MaxFragments || f.Index < 0 || f.Index >= f.Count {
		return nil, fmt.Errorf("%w: %d data bytes, index %d of %d, in %d", ErrFragment, len(f.Data), f.Index, f.Count, innerLength)
	}
	b := make([]byte, innerLength)
	b[0] = f.Kind
	copy(b[1:], f.ID[:])
	binary.BigEndian.PutUint16(b[17:], uint16(f.Index))
	binary.BigEndian.PutUint16(b[19:], uint16(f.Count))
	binary.BigEndian.PutUint16(b[21:], uint16(len(f.Data)))
	copy(b[fragmentHeaderLength:], f.Data)
	return b, nil
}

// DecodeFragment decodes an inner payload from untrusted bytes (a sealed
// payload that opened). Errors wrap ErrFragment; it never panics.
func DecodeFragment(b []byte) (Fragment, error) {
	if len(b) < fragmentHeaderLength {
		return Fragment{}, fmt.Errorf("%w: %d bytes", ErrFragment, len(b))
	}
	f := Fragment{Kind: b[0]}
	copy(f.ID[:], b[1:])
	f.Index = int(binary.BigEndian.Uint16(b[17:]))
	f.Count = int(binary.BigEndian.Uint16(b[19:]))
	n := int(binary.BigEndian.Uint16(b[21:]))
	switch {
	case f.Kind != KindFragment && f.Kind != KindLoop:
		return Fragment{}, fmt.Errorf("%w: kind %#02x", ErrFragment, f.Kind)
	case f.Count < 1 || f.Count > MaxFragments || f.Index >= f.Count:
		return Fragment{}, fmt.Errorf("%w: index %d of %d", ErrFragment, f.Index, f.Count)
	case n > len(b)-fragmentHeaderLength:
		return Fragment{}, fmt.Errorf("%w: length %d in %d bytes", ErrFragment, n, len(b))
	case f.Kind == KindLoop && f.Count != 1:
		return Fragment{}, fmt.Errorf("%w: loop of %d fragments", ErrFragment, f.Count)
	}
	for _, c := range b[fragmentHeaderLength+n:] {
		if c != 0 {
			return Fragment{}, fmt.Errorf("%w: non-zero padding", ErrFragment)
		}
	}
	f.Data = b[fragmentHeaderLength : fragmentHeaderLength+n]
	return f, nil
}

// Messages. What is fragmented is the message encoding
//
//	01 ‖ sender address length (u8) ‖ sender address ‖ conversation length (u16) ‖ conversation ‖ payload
//
// or, for a message that carries reply SURBs,
//
//	02 ‖ sender address length (u8) ‖ sender address ‖ conversation length (u16) ‖ conversation ‖
//	   reply tag (16) ‖ SURB count (u8, 1..MaxReplySURBs) ‖ SURB length (u16) ‖ SURBs ‖ payload
//
// The sender address (empty for an anonymous message) and the SURBs are
// inside the sealed payload, so only the recipient learns them.
const (
	messageVersion        = 1
	messageVersionReplies = 2
	// MaxConversationLength bounds a message's conversation id.
	MaxConversationLength = 1024
	// MaxReplySURBs bounds the reply SURBs one message carries.
	MaxReplySURBs = 16
	// ReplyTagLength is the size of a reply tag.
	ReplyTagLength = 16
	// maxSURBLength bounds a reply SURB's encoding (a 10-hop SURB is
	// 982 bytes).
	maxSURBLength = 4096
)

// Message is a message between clients.
type Message struct {
	// From is the sender's encoded Address, empty if the sender did not
	// give it.
	From []byte
	// Conversation is the sync layer's conversation id, carried end to end.
	Conversation []byte
	// Payload is the message.
	Payload []byte
	// ReplySURBs are SURBs to the sender's mailbox, each good for one
	// reply packet, and ReplyTag the sender's name for the set they join
	// at the recipient (the same for every message of one conversation
	// to one recipient). No SURBs: an encoding of version 01.
	ReplyTag   [ReplyTagLength]byte
	ReplySURBs [][]byte
	// ReplyTo is set on a delivered message that brought reply SURBs: the
	// ReplyAddress a reply through them is sent to. Not encoded.
	ReplyTo []byte
	// Shared is set on a delivered message read from a shared mailbox:
	// its shared address. Not encoded.
	Shared []byte
}

// EncodedLen is the size of m's encoding.
func (m *Message) EncodedLen() int {
	n := 1 + 1 + len(m.From) + 2 + len(m.Conversation) + len(m.Payload)
	if len(m.ReplySURBs) > 0 {
		n += ReplyTagLength + 1 + 2 + len(m.ReplySURBs)*len(m.ReplySURBs[0])
	}
	return n
}

// MarshalMessage returns m's encoding.
func MarshalMessage(m *Message) ([]byte, error) {
	if len(m.From) > 255 || len(m.Conversation) > MaxConversationLength {
		return nil, fmt.Errorf("%w: sender address of %d bytes, conversation of %d", ErrFragment, len(m.From), len(m.Conversation))
	}
	version := byte(messageVersion)
	if n := len(m.ReplySURBs); n > 0 {
		version = messageVersionReplies
		l := len(m.ReplySURBs[0])
		if n > MaxReplySURBs || l == 0 || l > maxSURBLength {
			return nil, fmt.Errorf("%w: %d reply SURBs of %d bytes", ErrFragment, n, l)
		}
		for _, s := range m.ReplySURBs {
			if len(s) != l {
				return nil, fmt.Errorf("%w: reply SURBs of different sizes", ErrFragment)
			}
		}
	}
	b := make([]byte, 0, m.EncodedLen())
	b = append(b, version, byte(len(m.From)))
	b = append(b, m.From...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Conversation)))
	b = append(b, m.Conversation...)
	if version == messageVersionReplies {
		b = append(b, m.ReplyTag[:]...)
		b = append(b, byte(len(m.ReplySURBs)))
		b = binary.BigEndian.AppendUint16(b, uint16(len(m.ReplySURBs[0])))
		for _, s := range m.ReplySURBs {
			b = append(b, s...)
		}
	}
	return append(b, m.Payload...), nil
}

// UnmarshalMessage decodes a reassembled message from untrusted bytes.
// The result aliases b. Errors wrap ErrFragment.
func UnmarshalMessage(b []byte) (*Message, error) {
	if len(b) < 4 || (b[0] != messageVersion && b[0] != messageVersionReplies) {
		return nil, fmt.Errorf("%w: message header", ErrFragment)
	}
	n := int(b[1])
	if len(b) < 2+n+2 {
		return nil, fmt.Errorf("%w: message of %d bytes with a %d-byte sender", ErrFragment, len(b), n)
	}
	m := &Message{From: b[2 : 2+n]}
	c := int(binary.BigEndian.Uint16(b[2+n:]))
	rest := b[4+n:]
	if c > MaxConversationLength || c > len(rest) {
		return nil, fmt.Errorf("%w: conversation of %d bytes", ErrFragment, c)
	}
	m.Conversation, rest = rest[:c], rest[c:]
	if b[0] == messageVersionReplies {
		if len(rest) < ReplyTagLength+3 {
			return nil, fmt.Errorf("%w: reply SURB header", ErrFragment)
		}
		copy(m.ReplyTag[:], rest)
		count, l := int(rest[ReplyTagLength]), int(binary.BigEndian.Uint16(rest[ReplyTagLength+1:]))
		rest = rest[ReplyTagLength+3:]
		if count == 0 || count > MaxReplySURBs || l == 0 || l > maxSURBLength || count*l > len(rest) {
			return nil, fmt.Errorf("%w: %d reply SURBs of %d bytes in %d", ErrFragment, count, l, len(rest))
		}
		for i := range count {
			m.ReplySURBs = append(m.ReplySURBs, rest[i*l:(i+1)*l])
		}
		rest = rest[count*l:]
	}
	m.Payload = rest
	if len(m.From) == 0 {
		m.From = nil
	}
	return m, nil
}

// Split cuts a message encoding into inner payloads of innerLength bytes.
func Split(id [MessageIDLength]byte, msg []byte, innerLength int) ([][]byte, error) {
	per := FragmentDataLength(innerLength)
	if per <= 0 {
		return nil, fmt.Errorf("%w: inner payload of %d bytes", ErrFragment, innerLength)
	}
	count := max(1, (len(msg)+per-1)/per)
	if count > MaxFragments {
		return nil, fmt.Errorf("%w: %d bytes need %d fragments, over %d", ErrFragment, len(msg), count, MaxFragments)
	}
	out := make([][]byte, count)
	for i := range count {
		data := msg[i*per : min(len(msg), (i+1)*per)]
		b, err := EncodeFragment(Fragment{Kind: KindFragment, ID: id, Index: i, Count: count, Data: data}, innerLength)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// Reassembler collects fragments into messages with bounded memory: at
// most MaxPending partial messages of at most MaxMessage bytes each, each
// dropped Timeout after its first fragment arrived; the oldest partial
// message is evicted when a new one would exceed MaxPending. Completed
// message ids are remembered (up to MaxPending·4 of them, for Timeout) so
// that a fragment delivered twice — mailbox pulls are at least once —
// does not deliver a message twice. It is not safe for concurrent use.
type Reassembler struct {
	// FragmentData is the data one full fragment carries
	// (FragmentDataLength).
	FragmentData int
	MaxPending   int
	MaxMessage   int
	Timeout      time.Duration

	partial map[[MessageIDLength]byte]*partial
	done    map[[MessageIDLength]byte]time.Time
	// Evicted and Expired count partial messages given up.
	Evicted, Expired uint64
}

type partial struct {
	first time.Time
	count int
	have  int
	parts [][]byte
	bytes int
}

// Add adds one fragment at now. It returns the whole message once its last
// fragment is in, nil otherwise. A fragment that contradicts what arrived
// before (another count), or a message over MaxMessage, is an error.
func (r *Reassembler) Add(now time.Time, f Fragment) ([]byte, error) {
	if r.partial == nil {
		r.partial = map[[MessageIDLength]byte]*partial{}
		r.done = map[[MessageIDLength]byte]time.Time{}
	}
	r.Expire(now)
	if _, ok := r.done[f.ID]; ok {
		return nil, nil
	}
	if (f.Count-1)*r.FragmentData > r.MaxMessage {
		return nil, fmt.Errorf("%w: %d fragments exceed the message bound", ErrFragment, f.Count)
	}
	p := r.partial[f.ID]
	if p == nil {
		if len(r.partial) >= r.MaxPending {
			r.evictOldest()
		}
		p = &partial{first: now, count: f.Count, parts: make([][]byte, f.Count)}
		r.partial[f.ID] = p
	}
	if p.count != f.Count {
		return nil, fmt.Errorf("%w: fragment count %d, earlier %d", ErrFragment, f.Count, p.count)
	}
	if p.parts[f.Index] != nil {
		return nil, nil
	}
	if p.bytes+len(f.Data) > r.MaxMessage {
		delete(r.partial, f.ID)
		return nil, fmt.Errorf("%w: message over %d bytes", ErrFragment, r.MaxMessage)
	}
	p.parts[f.Index] = append([]byte{}, f.Data...)
	p.have++
	p.bytes += len(f.Data)
	if p.have < p.count {
		return nil, nil
	}
	delete(r.partial, f.ID)
	if len(r.done) >= 4*r.MaxPending {
		r.forgetOldest()
	}
	r.done[f.ID] = now
	msg := make([]byte, 0, p.bytes)
	for _, part := range p.parts {
		msg = append(msg, part...)
	}
	return msg, nil
}

// Pending returns the number of partial messages held.
func (r *Reassembler) Pending() int { return len(r.partial) }

// Expire drops partial messages older than Timeout and forgets completed
// ids older than Timeout.
func (r *Reassembler) Expire(now time.Time) {
	for id, p := range r.partial {
		if now.Sub(p.first) >= r.Timeout {
			delete(r.partial, id)
			r.Expired++
		}
	}
	for id, t := range r.done {
		if now.Sub(t) >= r.Timeout {
			delete(r.done, id)
		}
	}
}

func (r *Reassembler) evictOldest() {
	var oldest [MessageIDLength]byte
	var at time.Time
	found := false
	for id, p := range r.partial {
		if !found || p.first.Before(at) {
			oldest, at, found = id, p.first, true
		}
	}
	if found {
		delete(r.partial, oldest)
		r.Evicted++
	}
}

func (r *Reassembler) forgetOldest() {
	var oldest [MessageIDLength]byte
	var at time.Time
	found := false
	for id, t := range r.done {
		if !found || t.Before(at) {
			oldest, at, found = id, t, true
		}
	}
	if found {
		delete(r.done, oldest)
	}
}
