package chat

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
)

var dave = key(4)

// ev is a membership event by author at clock, claiming actor.
func ev(clock uint64, author, actor ed25519.PublicKey, t chatv1.MembershipType, members ...ed25519.PublicKey) Event {
	return Event{
		ID:              []byte(fmt.Sprintf("id-%06d", clock)),
		Author:          author,
		Clock:           clock,
		MembershipEvent: MembershipEvent{Type: t, Actor: actor, Members: members},
	}
}

// own is an event whose author is its actor.
func own(clock uint64, who ed25519.PublicKey, t chatv1.MembershipType, members ...ed25519.PublicKey) Event {
	return ev(clock, who, who, t, members...)
}

const (
	create      = chatv1.MembershipType_MEMBERSHIP_TYPE_CREATE
	invite      = chatv1.MembershipType_MEMBERSHIP_TYPE_INVITE
	join        = chatv1.MembershipType_MEMBERSHIP_TYPE_JOIN
	leave       = chatv1.MembershipType_MEMBERSHIP_TYPE_LEAVE
	remove      = chatv1.MembershipType_MEMBERSHIP_TYPE_REMOVE
	adminAdd    = chatv1.MembershipType_MEMBERSHIP_TYPE_ADMIN_ADD
	adminRemove = chatv1.MembershipType_MEMBERSHIP_TYPE_ADMIN_REMOVE
)

// names shows a set of test keys by name, in a fixed order.
func names(keys []ed25519.PublicKey) string {
	var out []string
	for _, k := range keys {
		switch {
		case bytes.Equal(k, alice):
			out = append(out, "alice")
		case bytes.Equal(k, bob):
			out = append(out, "bob")
		case bytes.Equal(k, carol):
			out = append(out, "carol")
		case bytes.Equal(k, dave):
			out = append(out, "dave")
		default:
			out = append(out, "?")
		}
	}
	slices.Sort(out)
	return fmt.Sprint(out)
}

func TestGroup(t *testing.T) {
	// The group most cases start from: alice created it and invited bob
	// and carol, who joined.
	base := []Event{
		own(10, alice, create, bob, carol),
		own(11, bob, join),
		own(12, carol, join),
	}
	tests := []struct {
		name    string
		events  []Event
		refused map[string]Reason // event id → reason
		members string
		admins  string
		invited string
	}{
		{"creator is the first admin", base[:1], nil, "[alice]", "[alice]", "[bob carol]"},
		{"invited members join", base, nil, "[alice bob carol]", "[alice]", "[]"},
		{"admin invites", append(slices.Clone(base), own(20, alice, invite, dave), own(21, dave, join)),
			nil, "[alice bob carol dave]", "[alice]", "[]"},
		{"non-admin invites", append(slices.Clone(base), own(20, bob, invite, dave), own(21, dave, join)),
			map[string]Reason{"id-000020": ReasonNotAdmin, "id-000021": ReasonNotInvited}, "[alice bob carol]", "[alice]", "[]"},
		{"forged actor", append(slices.Clone(base), ev(20, bob, alice, remove, carol)),
			map[string]Reason{"id-000020": ReasonForgedActor}, "[alice bob carol]", "[alice]", "[]"},
		{"forged join", []Event{own(10, alice, create, bob), ev(11, carol, bob, join)},
			map[string]Reason{"id-000011": ReasonForgedActor}, "[alice]", "[alice]", "[bob]"},
		{"event before create", []Event{own(5, alice, invite, bob), own(10, alice, create)},
			map[string]Reason{"id-000005": ReasonNoGroup}, "[alice]", "[alice]", "[]"},
		{"second create", append(slices.Clone(base), own(20, bob, create, dave)),
			map[string]Reason{"id-000020": ReasonAlreadyCreated}, "[alice bob carol]", "[alice]", "[]"},
		{"admin removes", append(slices.Clone(base), own(20, alice, remove, bob)),
			nil, "[alice carol]", "[alice]", "[]"},
		{"removed member's event", append(slices.Clone(base), own(20, alice, adminAdd, bob), own(21, alice, remove, bob), own(22, bob, invite, dave)),
			map[string]Reason{"id-000022": ReasonRemoved}, "[alice carol]", "[alice]", "[]"},
		{"removed member cannot rejoin uninvited", append(slices.Clone(base), own(20, alice, remove, bob), own(21, bob, join)),
			map[string]Reason{"id-000021": ReasonRemoved}, "[alice carol]", "[alice]", "[]"},
		{"removed member invited again", append(slices.Clone(base), own(20, alice, remove, bob), own(21, alice, invite, bob), own(22, bob, join)),
			nil, "[alice bob carol]", "[alice]", "[]"},
		{"remove a stranger", append(slices.Clone(base), own(20, alice, remove, dave)),
			map[string]Reason{"id-000020": ReasonTarget}, "[alice bob carol]", "[alice]", "[]"},
		{"withdraw an invitation", append(slices.Clone(base), own(20, alice, invite, dave), own(21, alice, remove, dave), own(22, dave, join)),
			map[string]Reason{"id-000022": ReasonNotInvited}, "[alice bob carol]", "[alice]", "[]"},
		{"leave", append(slices.Clone(base), own(20, carol, leave)), nil, "[alice bob]", "[alice]", "[]"},
		{"decline", []Event{own(10, alice, create, bob), own(11, bob, leave)}, nil, "[alice]", "[alice]", "[]"},
		{"stranger leaves", append(slices.Clone(base), own(20, dave, leave)),
			map[string]Reason{"id-000020": ReasonNotMember}, "[alice bob carol]", "[alice]", "[]"},
		{"admin change", append(slices.Clone(base), own(20, alice, adminAdd, bob), own(21, bob, adminRemove, alice), own(22, bob, invite, dave)),
			nil, "[alice bob carol]", "[bob]", "[dave]"},
		{"demoted admin loses the right", append(slices.Clone(base), own(20, alice, adminAdd, bob), own(21, alice, adminRemove, bob), own(22, bob, remove, carol)),
			map[string]Reason{"id-000022": ReasonNotAdmin}, "[alice bob carol]", "[alice]", "[]"},
		{"admin of a non-member", append(slices.Clone(base), own(20, alice, adminAdd, dave)),
			map[string]Reason{"id-000020": ReasonTarget}, "[alice bob carol]", "[alice]", "[]"},
		{"demote a non-admin", append(slices.Clone(base), own(20, alice, adminRemove, bob)),
			map[string]Reason{"id-000020": ReasonTarget}, "[alice bob carol]", "[alice]", "[]"},
		{"last admin demotes itself", append(slices.Clone(base), own(20, alice, adminRemove, alice)),
			map[string]Reason{"id-000020": ReasonLastAdmin}, "[alice bob carol]", "[alice]", "[]"},
		{"last admin removes itself", append(slices.Clone(base), own(20, alice, remove, alice)),
			map[string]Reason{"id-000020": ReasonLastAdmin}, "[alice bob carol]", "[alice]", "[]"},
		{"last admin removes itself with an invitee", []Event{own(10, alice, create, bob, dave), own(11, bob, join), own(12, alice, remove, alice, dave)},
			map[string]Reason{"id-000012": ReasonLastAdmin}, "[alice bob]", "[alice]", "[dave]"},
		{"last admin removes everyone", []Event{own(10, alice, create, bob), own(11, bob, join), own(12, alice, remove, alice, bob)},
			nil, "[]", "[]", "[]"},
		{"equal clocks order by id", []Event{
			own(10, alice, create, bob),
			{ID: []byte("b"), Author: bob, Clock: 11, MembershipEvent: MembershipEvent{Type: join, Actor: bob}},
			{ID: []byte("a"), Author: alice, Clock: 11, MembershipEvent: MembershipEvent{Type: remove, Actor: alice, Members: []ed25519.PublicKey{bob}}},
		}, map[string]Reason{"b": ReasonNotInvited}, "[alice]", "[alice]", "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// In the order given, and in reverse: the result is the same.
			for _, order := range [][]Event{tt.events, reversed(tt.events)} {
				g := NewGroup()
				for _, e := range order {
					g.Add(e)
				}
				checkGroup(t, g, tt.refused, tt.members, tt.admins, tt.invited)
			}
		})
	}
}

// checkGroup fails t unless g holds the refusals and sets given.
func checkGroup(t *testing.T, g *Group, refused map[string]Reason, members, admins, invited string) {
	t.Helper()
	got := map[string]Reason{}
	for _, r := range g.Refused() {
		got[string(r.Event.ID)] = r.Reason
	}
	if fmt.Sprint(got) != fmt.Sprint(map[string]Reason(refused)) && !(len(got) == 0 && len(refused) == 0) {
		t.Errorf("refused %v, want %v", got, refused)
	}
	s := g.State()
	var inv []ed25519.PublicKey
	for k := range s.Invited {
		inv = append(inv, ed25519.PublicKey(k))
	}
	if names(s.MemberList()) != members || names(s.AdminList()) != admins || names(inv) != invited {
		t.Errorf("members %s admins %s invited %s; want %s %s %s",
			names(s.MemberList()), names(s.AdminList()), names(inv), members, admins, invited)
	}
	counts := g.Counts()
	for _, r := range refused {
		if counts[r] == 0 {
			t.Errorf("refusal %q not counted: %v", r, counts)
		}
	}
}

func reversed(events []Event) []Event {
	r := slices.Clone(events)
	slices.Reverse(r)
	return r
}

// A late event slots in where its clock puts it, and the answer for an
// event refused earlier changes with it.
func TestGroupLateEvent(t *testing.T) {
	g := NewGroup()
	if r := g.Add(own(10, alice, create)); r != "" {
		t.Fatal(r)
	}
	if r := g.Add(own(12, bob, join)); r != ReasonNotInvited {
		t.Fatalf("join before its invite arrived: %q", r)
	}
	if r := g.Add(own(11, alice, invite, bob)); r != "" {
		t.Fatalf("late invite: %q", r)
	}
	if !g.State().IsMember(bob) || len(g.Refused()) != 0 {
		t.Fatalf("bob is not a member after the late invite: %v", g.Refused())
	}
	if r := g.Add(own(11, alice, invite, bob)); r != ReasonDuplicate {
		t.Fatalf("duplicate: %q", r)
	}
	if g.Counts()[ReasonDuplicate] != 1 {
		t.Fatalf("duplicate not counted: %v", g.Counts())
	}
}

// A removed member who keeps sending is refused from the removal on; what
// it sent before stays.
func TestGroupCheckMessage(t *testing.T) {
	g := NewGroup()
	for _, e := range []Event{own(10, alice, create, bob, carol), own(11, bob, join), own(20, alice, remove, bob)} {
		if r := g.Add(e); r != "" {
			t.Fatal(r)
		}
	}
	tests := []struct {
		name   string
		author ed25519.PublicKey
		clock  uint64
		want   Reason
	}{
		{"member", alice, 30, ""},
		{"before joining", bob, 10, ReasonNotMember},
		{"while a member", bob, 15, ""},
		{"after removal", bob, 30, ReasonRemoved},
		{"invited, not joined", carol, 15, ReasonNotMember},
		{"stranger", dave, 15, ReasonNotMember},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := g.Counts()[tt.want]
			err := g.CheckMessage(tt.author, tt.clock, []byte("m"))
			if got := ReasonOf(err); got != tt.want {
				t.Fatalf("reason %q (%v), want %q", got, err, tt.want)
			}
			if tt.want != "" && g.Counts()[tt.want] != before+1 {
				t.Fatalf("refusal not counted: %v", g.Counts())
			}
		})
	}
}

// Whatever order the events of a group arrive in, its state is the same.
func TestGroupOrderIndependent(t *testing.T) {
	keys := []ed25519.PublicKey{alice, bob, carol, dave}
	rng := rand.New(rand.NewPCG(1, 2))
	var events []Event
	events = append(events, own(1, alice, create, bob))
	types := []chatv1.MembershipType{invite, join, leave, remove, adminAdd, adminRemove}
	for clock := uint64(2); clock < 60; clock++ {
		actor := keys[rng.IntN(len(keys))]
		e := own(clock, actor, types[rng.IntN(len(types))])
		if e.Type != join && e.Type != leave {
			e.Members = []ed25519.PublicKey{keys[rng.IntN(len(keys))]}
		}
		events = append(events, e)
	}
	want := NewGroup()
	for _, e := range events {
		want.Add(e)
	}
	for range 20 {
		shuffled := slices.Clone(events)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		g := NewGroup()
		for _, e := range shuffled {
			g.Add(e)
		}
		if fmt.Sprint(g.State()) != fmt.Sprint(want.State()) || len(g.Refused()) != len(want.Refused()) {
			t.Fatalf("state %v with %d refused, want %v with %d", g.State(), len(g.Refused()), want.State(), len(want.Refused()))
		}
	}
}

// EventOf takes a decoded membership payload into a Group.
func TestEventOf(t *testing.T) {
	b, err := proto.Marshal(event(create, bob))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(b, env(groupID))
	if err != nil {
		t.Fatal(err)
	}
	e, err := EventOf([]byte("x"), alice, m)
	if err != nil {
		t.Fatal(err)
	}
	g := NewGroup()
	if r := g.Add(e); r != "" || !g.State().IsAdmin(alice) {
		t.Fatalf("create: %q", r)
	}
	text, err := Decode(mustMarshal(t, text()), env(groupID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EventOf([]byte("y"), alice, text); err == nil {
		t.Fatal("a text message became an event")
	}
}

func mustMarshal(t testing.TB, p proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRemovedAt: RemovedAt says true exactly where CheckMessage refuses
// with ReasonRemoved, and counts nothing.
func TestRemovedAt(t *testing.T) {
	g := NewGroup()
	for _, e := range []Event{own(10, alice, create, bob, carol), own(11, bob, join), own(20, alice, remove, bob)} {
		if r := g.Add(e); r != "" {
			t.Fatal(r)
		}
	}
	for _, c := range []struct {
		author ed25519.PublicKey
		clock  uint64
	}{{alice, 30}, {bob, 10}, {bob, 15}, {bob, 30}, {carol, 15}, {dave, 15}} {
		counts := g.Counts()
		got := g.RemovedAt(c.author, c.clock, []byte("m"))
		if !maps.Equal(g.Counts(), counts) {
			t.Fatalf("RemovedAt counted: %v", g.Counts())
		}
		if want := ReasonOf(g.CheckMessage(c.author, c.clock, []byte("m"))) == ReasonRemoved; got != want {
			t.Errorf("RemovedAt(%x, %d) = %v, want %v", c.author[:2], c.clock, got, want)
		}
	}
}
