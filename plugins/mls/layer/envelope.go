package layer

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/strata-msg/strata/plugins/mls/codec"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// WireVersion is the version of the envelope this layer speaks.
const WireVersion = 1

// Kinds of envelope.
const (
	kindCommit      = 1 // a Commit (MLSMessage: PrivateMessage or PublicMessage)
	kindWelcome     = 2 // a Welcome (MLSMessage) with the hash of its Commit
	kindApplication = 3 // application data (MLSMessage: PrivateMessage)
	kindStatus      = 4 // a member's epoch status
	kindKeyPackage  = 5 // a KeyPackage to be added again with (MLSMessage)
	// kindCommitAgain is a retransmitted Commit with the members that
	// have not shown its epoch; kindGroupWelcome a Welcome with the new
	// members it is for, so that it can go to the whole group once.
	kindCommitAgain  = 6
	kindGroupWelcome = 7
	// kindGroupAsk is a member's ask for the group of a conversation of
	// three or more, with its members, to the lowest of them (lazy.go).
	kindGroupAsk = 8
)

// Limits of an envelope.
const (
	// MaxPayload is the largest plaintext accepted from above: the privacy
	// layer's 1 MiB less room for the MLS framing, padding and envelope.
	MaxPayload = 1<<20 - 16<<10
	// maxEnvelope is the largest envelope accepted from below (a Welcome of
	// a large group carries its whole ratchet tree).
	maxEnvelope = 1 << 20
	// maxPath is the most history entries a Welcome carries.
	maxPath = 64
)

// pathEntry says which Commit (by hash) entered an epoch.
type pathEntry struct {
	epoch uint64
	hash  []byte
	at    time.Time // when this node entered it (its own history only)
}

// envelope is what travels between two mls layers. Encoded:
//
//	struct {
//	  uint8 version = 1;
//	  uint8 kind;
//	  select (kind) {
//	    case commit, application: MLSMessage message;
//	    case welcome: PathEntry path<V>; MLSMessage message;
//	    case status:  opaque group_id<V>; uint64 epoch; opaque branch<V>;
//	                  opaque sender<V>; opaque tag<V>;
//	    case keypackage: opaque group_id<V>; MLSMessage message;
//	    case commit_again: opaque committer<V>; opaque pending<V>;
//	                       MLSMessage message;
//	    case group_welcome: opaque committer<V>; opaque joiners<V>;
//	                        PathEntry path<V>; MLSMessage message;
//	    case group_ask: opaque group_id<V>; opaque sender<V>;
//	                    opaque members<V>;
//	  };
//	} Envelope;
//
// with
//
//	struct { uint64 epoch; opaque commit_hash<V>; } PathEntry;
//
// A Welcome's path is the committer's recent history: for each epoch the
// hash of the Commit that entered it, oldest first, the last being the
// Commit the Welcome goes with (its epoch is the one the new member
// joins). A member already in the group compares it with its own history
// to choose between two branches (handleWelcome).
//
// pending, joiners and members are 32-byte identities one after another
// (members: 3 to 1,024 of them, ascending, the sender among them). A
// commit_again is a Commit sent again by its committer, with the members
// that have not shown its epoch: it goes to the whole group once, and
// only the members it lists answer it (with a status to the committer). A
// group_welcome is a Welcome with the new members it is for: one Welcome
// serves every member a Commit adds, so it can go to the whole group once;
// a member that is not listed ignores it.
//
// A status says which epoch the sender is in and on which branch (the hash
// of the Commit that led to it; empty for epoch 0), with a tag that only a
// member of that epoch can make (statusTag), so that two members in the
// same epoch with different tags know they forked.
type envelope struct {
	kind    uint8
	raw     []byte // the MLSMessage's bytes, as received (its hash is the Commit's)
	message *wire.MLSMessage
	// welcome
	path       []pathEntry
	commitHash []byte // the last entry's
	// status
	groupID []byte
	epoch   uint64
	branch  []byte
	sender  []byte
	tag     []byte
	// commit_again, group_welcome: the committer and the members listed
	// (pending or joiners).
	committer []byte
	listed    [][]byte
}

// lists reports whether e's list names id.
func (e *envelope) lists(id []byte) bool {
	return slices.ContainsFunc(e.listed, func(x []byte) bool { return bytes.Equal(x, id) })
}

// marshal encodes e; for the kinds with a message, e.raw is written.
func (e *envelope) marshal() ([]byte, error) {
	w := codec.NewWriter(nil)
	w.Uint8(WireVersion)
	w.Uint8(e.kind)
	switch e.kind {
	case kindCommit, kindApplication:
		w.Raw(e.raw)
	case kindKeyPackage:
		w.Opaque(e.groupID)
		w.Raw(e.raw)
	case kindCommitAgain:
		w.Opaque(e.committer)
		w.Opaque(joinIDs(e.listed))
		w.Raw(e.raw)
	case kindWelcome, kindGroupWelcome:
		if e.kind == kindGroupWelcome {
			w.Opaque(e.committer)
			w.Opaque(joinIDs(e.listed))
		}
		w.Vector(func(w *codec.Writer) {
			for _, p := range e.path {
				w.Uint64(p.epoch)
				w.Opaque(p.hash)
			}
		})
		w.Raw(e.raw)
	case kindStatus:
		w.Opaque(e.groupID)
		w.Uint64(e.epoch)
		w.Opaque(e.branch)
		w.Opaque(e.sender)
		w.Opaque(e.tag)
	case kindGroupAsk:
		w.Opaque(e.groupID)
		w.Opaque(e.sender)
		w.Opaque(joinIDs(e.listed))
	default:
		return nil, fmt.Errorf("mls: encode envelope: kind %d", e.kind)
	}
	if err := w.Err(); err != nil {
		return nil, fmt.Errorf("mls: encode envelope: %w", err)
	}
	return w.Bytes(), nil
}

// decodeEnvelope decodes an envelope and the MLSMessage it carries, whose
// wire format must be the kind's.
func decodeEnvelope(b []byte) (*envelope, error) {
	if len(b) > maxEnvelope {
		return nil, fmt.Errorf("%w: envelope of %d bytes", ErrOversize, len(b))
	}
	r := codec.NewReader(b)
	v, err := r.Uint8()
	if err != nil {
		return nil, fmt.Errorf("%w: envelope: %w", ErrMalformed, err)
	}
	if v != WireVersion {
		return nil, fmt.Errorf("%w: envelope version %d", ErrVersion, v)
	}
	e := &envelope{}
	if e.kind, err = r.Uint8(); err != nil {
		return nil, fmt.Errorf("%w: envelope: %w", ErrMalformed, err)
	}
	switch e.kind {
	case kindCommit, kindApplication, kindWelcome, kindKeyPackage, kindCommitAgain, kindGroupWelcome:
		if e.kind == kindKeyPackage {
			if e.groupID, err = r.Opaque(); err != nil {
				return nil, fmt.Errorf("%w: envelope: %w", ErrMalformed, err)
			}
		}
		if e.kind == kindCommitAgain || e.kind == kindGroupWelcome {
			if err := e.decodeListed(r); err != nil {
				return nil, err
			}
		}
		if e.kind == kindWelcome || e.kind == kindGroupWelcome {
			err := r.Vector(func(r *codec.Reader) error {
				if len(e.path) == maxPath {
					return fmt.Errorf("a path longer than %d", maxPath)
				}
				var p pathEntry
				var err error
				if p.epoch, err = r.Uint64(); err != nil {
					return err
				}
				if p.hash, err = r.Opaque(); err != nil {
					return err
				}
				e.path = append(e.path, p)
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("%w: envelope: %w", ErrMalformed, err)
			}
			if len(e.path) == 0 {
				return nil, fmt.Errorf("%w: Welcome without a path", ErrMalformed)
			}
			e.commitHash = e.path[len(e.path)-1].hash
		}
		e.raw = b[len(b)-r.Len():]
		var m wire.MLSMessage
		if err := wire.Unmarshal(e.raw, &m); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		e.raw = append([]byte(nil), e.raw...)
		switch {
		case (e.kind == kindWelcome || e.kind == kindGroupWelcome) && m.WireFormat != wire.WireFormatWelcome,
			e.kind == kindKeyPackage && m.WireFormat != wire.WireFormatKeyPackage,
			e.kind == kindApplication && m.WireFormat != wire.WireFormatPrivateMessage,
			(e.kind == kindCommit || e.kind == kindCommitAgain) && m.WireFormat != wire.WireFormatPrivateMessage && m.WireFormat != wire.WireFormatPublicMessage:
			return nil, fmt.Errorf("%w: envelope kind %d carries wire format %d", ErrMalformed, e.kind, m.WireFormat)
		}
		if e.kind == kindApplication && m.PrivateMessage.ContentType != wire.ContentApplication {
			return nil, fmt.Errorf("%w: application envelope with content type %d", ErrMalformed, m.PrivateMessage.ContentType)
		}
		if (e.kind == kindCommit || e.kind == kindCommitAgain) && contentType(&m) != wire.ContentCommit {
			return nil, fmt.Errorf("%w: commit envelope with content type %d", ErrMalformed, contentType(&m))
		}
		e.message = &m
		return e, nil
	case kindStatus:
		if e.groupID, err = r.Opaque(); err == nil {
			if e.epoch, err = r.Uint64(); err == nil {
				if e.branch, err = r.Opaque(); err == nil {
					if e.sender, err = r.Opaque(); err == nil {
						if e.tag, err = r.Opaque(); err == nil {
							err = r.Done()
						}
					}
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%w: status: %w", ErrMalformed, err)
		}
		return e, nil
	case kindGroupAsk:
		var list []byte
		if e.groupID, err = r.Opaque(); err == nil {
			if e.sender, err = r.Opaque(); err == nil {
				if list, err = r.Opaque(); err == nil {
					err = r.Done()
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%w: group ask: %w", ErrMalformed, err)
		}
		if len(e.sender) != identitySize || len(list) > maxMembers*identitySize {
			return nil, fmt.Errorf("%w: group ask: sender of %d bytes, list of %d", ErrMalformed, len(e.sender), len(list))
		}
		if e.listed, err = splitIDs(list); err != nil {
			return nil, fmt.Errorf("%w: group ask: %w", ErrMalformed, err)
		}
		if len(e.listed) < 3 || !slices.IsSortedFunc(e.listed, bytes.Compare) || !e.lists(e.sender) {
			return nil, fmt.Errorf("%w: group ask: %d members, sorted %t, sender listed %t", ErrMalformed, len(e.listed), slices.IsSortedFunc(e.listed, bytes.Compare), e.lists(e.sender))
		}
		for i := 1; i < len(e.listed); i++ {
			if bytes.Equal(e.listed[i-1], e.listed[i]) {
				return nil, fmt.Errorf("%w: group ask: a member listed twice", ErrMalformed)
			}
		}
		return e, nil
	}
	return nil, fmt.Errorf("%w: envelope kind %d", ErrMalformed, e.kind)
}

// decodeListed reads the committer and the list of a commit_again or
// group_welcome: a 32-byte committer and at most maxMembers 32-byte
// identities.
func (e *envelope) decodeListed(r *codec.Reader) error {
	var err error
	if e.committer, err = r.Opaque(); err != nil {
		return fmt.Errorf("%w: envelope: %w", ErrMalformed, err)
	}
	if len(e.committer) != identitySize {
		return fmt.Errorf("%w: committer of %d bytes", ErrMalformed, len(e.committer))
	}
	list, err := r.Opaque()
	if err != nil {
		return fmt.Errorf("%w: envelope: %w", ErrMalformed, err)
	}
	if len(list) > maxMembers*identitySize {
		return fmt.Errorf("%w: a list of %d bytes", ErrMalformed, len(list))
	}
	if e.listed, err = splitIDs(list); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(e.listed) == 0 {
		return fmt.Errorf("%w: an empty member list", ErrMalformed)
	}
	return nil
}

// contentType is the content type of a PublicMessage or PrivateMessage.
func contentType(m *wire.MLSMessage) wire.ContentType {
	switch {
	case m.PrivateMessage != nil:
		return m.PrivateMessage.ContentType
	case m.PublicMessage != nil:
		return m.PublicMessage.Content.ContentType
	}
	return 0
}

// messageGroup returns the group id and epoch of a PublicMessage or
// PrivateMessage.
func messageGroup(m *wire.MLSMessage) ([]byte, uint64) {
	switch {
	case m.PrivateMessage != nil:
		return m.PrivateMessage.GroupID, m.PrivateMessage.Epoch
	case m.PublicMessage != nil:
		return m.PublicMessage.Content.GroupID, m.PublicMessage.Content.Epoch
	}
	return nil, 0
}
