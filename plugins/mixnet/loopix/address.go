package loopix

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

// AddressVersion is the version byte of an encoded Address.
const AddressVersion = 1

// AddressLength is the size of an encoded Address.
const AddressLength = 1 + sphinx.NodeIDLength + sphinx.RecipientIDLength + KeyLength

// ErrAddress reports bytes that are not an encoded Address.
var ErrAddress = errors.New("loopix: malformed address")

// Address is a client's privacy address, the mixnet section of its
// contact card: its provider (the Sphinx node id of the provider's
// descriptor), its mailbox there and its X25519 key for sealed payloads.
//
//	01 ‖ provider node id (32) ‖ mailbox id (32) ‖ X25519 public key (32)
type Address struct {
	Provider sphinx.NodeID
	Mailbox  MailboxID
	Key      [KeyLength]byte
}

// Marshal returns the address's encoding.
func (a *Address) Marshal() []byte {
	b := make([]byte, 0, AddressLength)
	b = append(b, AddressVersion)
	b = append(b, a.Provider[:]...)
	b = append(b, a.Mailbox[:]...)
	return append(b, a.Key[:]...)
}

// String returns the address in hex, prefixed "mixnet:".
func (a *Address) String() string { return "mixnet:" + hex.EncodeToString(a.Marshal()) }

// ParseAddress decodes an address from untrusted bytes; the key must be a
// usable X25519 public key. Errors wrap ErrAddress.
func ParseAddress(b []byte) (*Address, error) {
	if len(b) != AddressLength {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrAddress, len(b), AddressLength)
	}
	if b[0] != AddressVersion {
		return nil, fmt.Errorf("%w: version %d", ErrAddress, b[0])
	}
	var a Address
	n := copy(a.Provider[:], b[1:])
	n += copy(a.Mailbox[:], b[1+n:])
	copy(a.Key[:], b[1+n:])
	if err := sphinx.CheckGroupElement(a.Key[:]); err != nil {
		return nil, fmt.Errorf("%w: key: %v", ErrAddress, err)
	}
	return &a, nil
}

// ReplyAddressVersion is the version byte of a ReplyAddress.
const ReplyAddressVersion = 2

// ReplyAddressLength is the size of a ReplyAddress.
const ReplyAddressLength = 1 + ReplyTagLength

// ReplyAddress is the address a client gives the layer above for the
// sender of a message that brought reply SURBs: 02 ‖ reply tag. It names
// the set of SURBs the client holds for that sender, nothing of where
// they lead; it means something only to the client that made it.
func ReplyAddress(tag [ReplyTagLength]byte) []byte {
	return append([]byte{ReplyAddressVersion}, tag[:]...)
}

// ParseReplyAddress decodes a ReplyAddress from untrusted bytes. Errors
// wrap ErrAddress.
func ParseReplyAddress(b []byte) ([ReplyTagLength]byte, error) {
	var tag [ReplyTagLength]byte
	if len(b) != ReplyAddressLength || b[0] != ReplyAddressVersion {
		return tag, fmt.Errorf("%w: not a reply address", ErrAddress)
	}
	copy(tag[:], b[1:])
	return tag, nil
}
