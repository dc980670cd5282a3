package wire

import "github.com/strata-msg/strata/plugins/mls/codec"

// MLSMessage is the outer envelope of everything MLS sends (RFC 9420 §6).
// The field that WireFormat names holds the message; the others are nil.
// Decoding rejects any version but mls10 and unknown wire formats.
type MLSMessage struct {
	Version        ProtocolVersion
	WireFormat     WireFormat
	PublicMessage  *PublicMessage
	PrivateMessage *PrivateMessage
	Welcome        *Welcome
	GroupInfo      *GroupInfo
	KeyPackage     *KeyPackage
}

func (m *MLSMessage) body() Encoder {
	switch m.WireFormat {
	case WireFormatPublicMessage:
		if m.PublicMessage != nil {
			return m.PublicMessage
		}
	case WireFormatPrivateMessage:
		if m.PrivateMessage != nil {
			return m.PrivateMessage
		}
	case WireFormatWelcome:
		if m.Welcome != nil {
			return m.Welcome
		}
	case WireFormatGroupInfo:
		if m.GroupInfo != nil {
			return m.GroupInfo
		}
	case WireFormatKeyPackage:
		if m.KeyPackage != nil {
			return m.KeyPackage
		}
	}
	return nil
}

// Encode writes m.
func (m *MLSMessage) Encode(w *codec.Writer) {
	w.Uint16(uint16(m.Version))
	w.Uint16(uint16(m.WireFormat))
	b := m.body()
	if b == nil {
		w.Fail(invalid("MLSMessage without a body for wire_format", m.WireFormat))
		return
	}
	b.Encode(w)
}

// Decode reads m.
func (m *MLSMessage) Decode(r *codec.Reader) error {
	*m = MLSMessage{}
	v, err := r.Uint16()
	if err != nil {
		return wrap("MLSMessage", err)
	}
	if m.Version = ProtocolVersion(v); m.Version != MLS10 {
		return wrap("MLSMessage", invalid("version", v))
	}
	wf, err := r.Uint16()
	if err != nil {
		return wrap("MLSMessage", err)
	}
	m.WireFormat = WireFormat(wf)
	switch m.WireFormat {
	case WireFormatPublicMessage:
		m.PublicMessage = new(PublicMessage)
		err = m.PublicMessage.Decode(r)
	case WireFormatPrivateMessage:
		m.PrivateMessage = new(PrivateMessage)
		err = m.PrivateMessage.Decode(r)
	case WireFormatWelcome:
		m.Welcome = new(Welcome)
		err = m.Welcome.Decode(r)
	case WireFormatGroupInfo:
		m.GroupInfo = new(GroupInfo)
		err = m.GroupInfo.Decode(r)
	case WireFormatKeyPackage:
		m.KeyPackage = new(KeyPackage)
		err = m.KeyPackage.Decode(r)
	default:
		err = invalid("wire_format", wf)
	}
	return wrap("MLSMessage", err)
}
