package sdktest

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
)

// FormatFrame prints a frame on one line for a failure message: every
// routing field by name, and byte fields as quoted text when they are
// printable, else as hex, cut after 16 bytes. For example:
//
//	UP trace=7 peer="overlay-node-a" conversation="c1" protocol="direct" hints={priority=2 ttl=60s} message_id=- payload[15]="a message for b"
func FormatFrame(f *commonv1.Frame) string {
	if f == nil {
		return "<nil frame>"
	}
	var b strings.Builder
	switch f.GetDirection() {
	case commonv1.Direction_DIRECTION_UP:
		b.WriteString("UP")
	case commonv1.Direction_DIRECTION_DOWN:
		b.WriteString("DOWN")
	default:
		fmt.Fprintf(&b, "direction=%d(%v)", int32(f.GetDirection()), f.GetDirection())
	}
	fmt.Fprintf(&b, " trace=%d peer=%s conversation=%s protocol=%q hints=%s message_id=%s payload[%d]=%s",
		f.GetTraceId(), FormatBytes(f.GetPeer()), FormatBytes(f.GetConversation()), f.GetProtocol(),
		FormatHints(f.GetHints()), FormatBytes(f.GetMessageId()), len(f.GetPayload()), FormatBytes(f.GetPayload()))
	return b.String()
}

// FormatHints prints hints as {ephemeral priority=N ttl=Ns}, or - for none.
func FormatHints(h *commonv1.Hints) string {
	if h == nil {
		return "-"
	}
	var parts []string
	if h.GetEphemeral() {
		parts = append(parts, "ephemeral")
	}
	if h.GetPriority() != 0 {
		parts = append(parts, fmt.Sprintf("priority=%d", h.GetPriority()))
	}
	if h.GetTtlSeconds() != 0 {
		parts = append(parts, fmt.Sprintf("ttl=%ds", h.GetTtlSeconds()))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// FormatBytes prints b as quoted text when every byte is printable ASCII,
// else as hex; either is cut after 16 bytes with a trailing "…". Empty is
// "-".
func FormatBytes(b []byte) string {
	if len(b) == 0 {
		return "-"
	}
	const limit = 16
	cut, more := b, ""
	if len(cut) > limit {
		cut, more = cut[:limit], "…"
	}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return hex.EncodeToString(cut) + more
		}
	}
	return strconv.Quote(string(cut)) + more
}
