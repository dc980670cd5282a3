package bsp

import (
	"errors"
	"fmt"

	"github.com/strata-msg/strata/plugins/bsp/wire"
)

// In BSP the client that owns a group decides what a message body is and
// which messages it depends on (§2.1, §2.10). Strata's sync client is one
// client, ClientID major version ClientMajor; its group ids are BSP group
// ids whose descriptor is the host's conversation id, and its bodies are
//
//	u8   format (BodyFormat)
//	u8   flags (bit 0: ephemeral; other bits must be 0)
//	32   author's identity key
//	u8   number of parents n (at most MaxParentsLimit)
//	32·n parents' message ids
//	...  the application's payload
//
// The body is hashed into the message id (§2.3), so author, parents and
// flag are bound to the id: a relay cannot change them unseen.
const (
	// ClientID is the BSP client id of Strata's sync client.
	ClientID = "org.strata-msg.sync"
	// ClientMajor is its major version.
	ClientMajor = 0
	// BodyFormat is the first byte of every body.
	BodyFormat = 1
	// IdentitySize is the length of an identity key.
	IdentitySize = 32
	// MaxParentsLimit bounds the parents one message names.
	MaxParentsLimit = 32
	// bodyHeader is a body's length with no parent and no payload.
	bodyHeader = 1 + 1 + IdentitySize + 1
	// MaxPayload is the largest application payload of one message: a
	// body of wire.MaxBody with MaxParentsLimit parents.
	MaxPayload = wire.MaxBody - bodyHeader - MaxParentsLimit*wire.IDLen

	flagEphemeral = 1
)

// Validation errors: the message is INVALID.
var (
	errBodyFormat  = errors.New("bsp: body is not a Strata sync body")
	errTooManyDeps = errors.New("bsp: too many parents")
	errSelfParent  = errors.New("bsp: a parent repeated")
)

// body is a decoded Strata sync body.
type body struct {
	ephemeral bool
	author    []byte
	parents   []wire.ID
	payload   []byte
}

// encodeBody writes b; the caller has checked the limits.
func encodeBody(b body) []byte {
	out := make([]byte, 0, bodyHeader+len(b.parents)*wire.IDLen+len(b.payload))
	var flags byte
	if b.ephemeral {
		flags |= flagEphemeral
	}
	out = append(out, BodyFormat, flags)
	out = append(out, b.author...)
	out = append(out, byte(len(b.parents)))
	for _, p := range b.parents {
		out = append(out, p[:]...)
	}
	return append(out, b.payload...)
}

// decodeBody reads a body from the network; maxParents is the configured
// bound. Slices alias raw.
func decodeBody(raw []byte, maxParents int) (body, error) {
	if len(raw) < bodyHeader || raw[0] != BodyFormat {
		return body{}, fmt.Errorf("%w: %d bytes", errBodyFormat, len(raw))
	}
	flags := raw[1]
	if flags&^flagEphemeral != 0 {
		return body{}, fmt.Errorf("%w: flags %#x", errBodyFormat, flags)
	}
	b := body{ephemeral: flags&flagEphemeral != 0, author: raw[2 : 2+IdentitySize]}
	n := int(raw[2+IdentitySize])
	if n > maxParents {
		return body{}, fmt.Errorf("%w: %d", errTooManyDeps, n)
	}
	rest := raw[bodyHeader:]
	if len(rest) < n*wire.IDLen {
		return body{}, fmt.Errorf("%w: %d parents in %d bytes", errBodyFormat, n, len(rest))
	}
	seen := make(map[wire.ID]struct{}, n)
	for i := range n {
		p := wire.ID(rest[i*wire.IDLen:])
		if _, dup := seen[p]; dup {
			return body{}, errSelfParent
		}
		seen[p] = struct{}{}
		b.parents = append(b.parents, p)
	}
	b.payload = rest[n*wire.IDLen:]
	return b, nil
}

// groupID is the BSP group id of the host's conversation id.
func groupID(conversation []byte) wire.ID {
	return wire.GroupID(ClientID, ClientMajor, conversation)
}
