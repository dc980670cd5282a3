package sphinx

import "errors"

// Errors returned by this package. They are wrapped with context; test them
// with errors.Is. A relay counts and drops a packet on any of them.
var (
	// ErrTruncated reports a packet, SURB, payload or key buffer shorter
	// than the geometry requires.
	ErrTruncated = errors.New("sphinx: input too short")
	// ErrOversize reports a packet, SURB, payload or key buffer longer than
	// the geometry allows.
	ErrOversize = errors.New("sphinx: input too long")
	// ErrVersion reports a header whose 2-byte additional data is not
	// 00 00 (version 0, reserved 0).
	ErrVersion = errors.New("sphinx: unsupported header version")
	// ErrInvalidGroupElement reports an X25519 value that is not accepted:
	// a non-canonical encoding (top bit set, or u >= 2^255-19), one of the
	// small-order points, or a shared secret that came out all zero. It is
	// checked before the value is used.
	ErrInvalidGroupElement = errors.New("sphinx: invalid X25519 group element")
	// ErrInvalidMAC reports a header MAC that does not verify under the
	// key tried: the packet is for another key (epoch) or was altered.
	// The packet is left untouched, so another key may be tried.
	ErrInvalidMAC = errors.New("sphinx: header MAC mismatch")
	// ErrInvalidCommands reports routing commands in the decrypted per-hop
	// block that do not parse; the wrapped error says why (see the command
	// errors below).
	ErrInvalidCommands = errors.New("sphinx: invalid routing commands")
	// ErrPayloadTag reports a payload whose 32-byte zero tag did not come
	// out zero at the end: the payload was altered on the way or is not
	// for these keys.
	ErrPayloadTag = errors.New("sphinx: payload authentication failed")
	// ErrGeometry reports an inconsistent or unsupported Geometry.
	ErrGeometry = errors.New("sphinx: invalid geometry")
	// ErrPath reports a path that cannot be encoded: no hops or more than
	// NrHops, a hop whose commands do not fit its routing block, a
	// NextNodeHop given by the caller, or a SURB path without SURBReply at
	// its last hop.
	ErrPath = errors.New("sphinx: invalid path")
	// ErrSURBKeys reports a SURB decryption token of the wrong length.
	ErrSURBKeys = errors.New("sphinx: invalid SURB decryption keys")
	// ErrForwardPayload reports a forward payload plaintext whose flag or
	// reserved byte is invalid, or a geometry without room for a SURB.
	ErrForwardPayload = errors.New("sphinx: invalid forward payload")
)

// Errors of the routing command decoder (ParseCommands). Unwrap wraps them
// together with ErrInvalidCommands.
var (
	// ErrUnknownCommand reports a command id this package does not know.
	ErrUnknownCommand = errors.New("sphinx: unknown routing command")
	// ErrTruncatedCommand reports a command cut short by the end of the
	// block.
	ErrTruncatedCommand = errors.New("sphinx: truncated routing command")
	// ErrCommandPadding reports non-zero bytes after the null command.
	ErrCommandPadding = errors.New("sphinx: non-zero routing command padding")
	// ErrDuplicateCommand reports a command that occurs twice in one block.
	ErrDuplicateCommand = errors.New("sphinx: duplicate routing command")
)
