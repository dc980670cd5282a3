package testvectors

import (
	"bytes"
	"encoding/json"
	"sort"
	"testing"

	"github.com/strata-msg/strata/plugins/mls/wire"
)

func init() { register("messages", checkMessages) }

// messageFields maps each field of a messages.json case to a fresh value of
// the structure it encodes and, for MLSMessages, the wire format it must
// carry (0 for bare structures).
var messageFields = map[string]func() (codecValue, wire.WireFormat){
	"mls_welcome":                       func() (codecValue, wire.WireFormat) { return new(wire.MLSMessage), wire.WireFormatWelcome },
	"mls_group_info":                    func() (codecValue, wire.WireFormat) { return new(wire.MLSMessage), wire.WireFormatGroupInfo },
	"mls_key_package":                   func() (codecValue, wire.WireFormat) { return new(wire.MLSMessage), wire.WireFormatKeyPackage },
	"ratchet_tree":                      func() (codecValue, wire.WireFormat) { return new(wire.RatchetTree), 0 },
	"group_secrets":                     func() (codecValue, wire.WireFormat) { return new(wire.GroupSecrets), 0 },
	"add_proposal":                      func() (codecValue, wire.WireFormat) { return new(wire.Add), 0 },
	"update_proposal":                   func() (codecValue, wire.WireFormat) { return new(wire.Update), 0 },
	"remove_proposal":                   func() (codecValue, wire.WireFormat) { return new(wire.Remove), 0 },
	"pre_shared_key_proposal":           func() (codecValue, wire.WireFormat) { return new(wire.PreSharedKey), 0 },
	"re_init_proposal":                  func() (codecValue, wire.WireFormat) { return new(wire.ReInit), 0 },
	"external_init_proposal":            func() (codecValue, wire.WireFormat) { return new(wire.ExternalInit), 0 },
	"group_context_extensions_proposal": func() (codecValue, wire.WireFormat) { return new(wire.GroupContextExtensions), 0 },
	"commit":                            func() (codecValue, wire.WireFormat) { return new(wire.Commit), 0 },
	"public_message_application":        func() (codecValue, wire.WireFormat) { return new(wire.MLSMessage), wire.WireFormatPublicMessage },
	"public_message_proposal":           func() (codecValue, wire.WireFormat) { return new(wire.MLSMessage), wire.WireFormatPublicMessage },
	"public_message_commit":             func() (codecValue, wire.WireFormat) { return new(wire.MLSMessage), wire.WireFormatPublicMessage },
	"private_message":                   func() (codecValue, wire.WireFormat) { return new(wire.MLSMessage), wire.WireFormatPrivateMessage },
}

type codecValue interface {
	wire.Encoder
	wire.Decoder
}

// checkMessages checks that every structure of every case decodes, uses
// all its bytes and encodes back to the same bytes. A case passes when all
// its fields do; a field the checker does not know fails the case.
func checkMessages(t *testing.T, data []byte, rep *report) {
	for i, c := range decodeCases[map[string]hexBytes](t, data) {
		names := make([]string, 0, len(c))
		for name := range c {
			names = append(names, name)
		}
		sort.Strings(names)
		ok := len(names) == len(messageFields)
		if !ok {
			t.Errorf("case %d: %d fields, want %d", i, len(names), len(messageFields))
		}
		for _, name := range names {
			newValue, known := messageFields[name]
			if !known {
				t.Errorf("case %d: unknown field %q", i, name)
				ok = false
				continue
			}
			v, wf := newValue()
			if err := roundTrip(c[name], v); err != nil {
				t.Errorf("case %d: %s: %v", i, name, err)
				ok = false
				continue
			}
			if m, isMsg := v.(*wire.MLSMessage); isMsg && m.WireFormat != wf {
				t.Errorf("case %d: %s: wire format %d, want %d", i, name, m.WireFormat, wf)
				ok = false
			}
		}
		if ok {
			rep.pass()
		}
	}
}

// roundTrip decodes b into v and checks that v encodes back to b.
func roundTrip(b []byte, v codecValue) error {
	if err := wire.Unmarshal(b, v); err != nil {
		return err
	}
	out, err := wire.Marshal(v)
	if err != nil {
		return err
	}
	if !bytes.Equal(out, b) {
		return &mismatchError{got: out, want: b}
	}
	return nil
}

type mismatchError struct{ got, want []byte }

func (e *mismatchError) Error() string {
	n := 0
	for n < len(e.got) && n < len(e.want) && e.got[n] == e.want[n] {
		n++
	}
	b, _ := json.Marshal(map[string]int{"got_len": len(e.got), "want_len": len(e.want), "first_diff": n})
	return "re-encoding differs: " + string(b)
}
