package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	chatv1 "github.com/strata-msg/strata/core/api/chat/v1"
	"github.com/strata-msg/strata/host/chat"
	"github.com/strata-msg/strata/host/conversations"
	"github.com/strata-msg/strata/host/testnet"
)

// The three-user demo (strata demo): a local network on loopback built by
// host/testnet (every user a `strata run` process with its plugins, and
// the relays the stack's privacy layer needs), driven entirely through
// each node's messaging API, as a chat client drives it: chat payloads
// (host/chat) in a 1:1 chat, a private group run by its membership events
// and a public chat; delivered receipts from the nodes, read receipts on
// MarkRead.

// chatDemoOptions are strata demo's flags.
type chatDemoOptions struct {
	pluginDir, dataDir, mode, stack string
	messages                        int
	allowUnverified, verbose        bool
	timeout                         time.Duration
}

// demoStack is the demo's default stack, the mission's second: libp2p +
// mixnet + mls + bsp, as configs/libp2p-mixnet-mls-bsp.yaml has it; the
// testnet builds the mixnet (an authority, 3 layers of 2 mixes, 2
// providers) with its test rates.
const demoStack = `# Written by strata demo: the stack of the demo's users (the
# testnet sets each node's name, data directory and role, and the
# mixnet's keys under layers.privacy.config).
node:
  name: demo
  data_dir: %[4]s
  dial_contacts: false
plugins:
  dir: %[1]s
  allow_unverified: %[3]t
layers:
  p2p:
    plugin: libp2p
    mode: %[2]s
    config:
      listen: ["/ip4/127.0.0.1/tcp/0"]
      mdns: false
      dht: "off"
  privacy:
    plugin: mixnet
    mode: %[2]s
    config:
      overlay: libp2p
  secure:
    plugin: mls
    mode: %[2]s
    config:
      settle_window: 30s
      branch_retention: 5m
      retransmit_initial: 5s
      retransmit_max: 2m
      takeover_timeout: 60s
  sync:
    plugin: bsp
    mode: %[2]s
    config:
      mode: eager
      initial_latency: 3s
      min_latency: 500ms
      max_latency: 30s
      max_backoff: 10m
      relay: false
      history: 0s
log:
  level: warn
`

// demoPublicChat is the public chat the demo's users join.
const demoPublicChat = "strata-demo"

// demoUser is one user of the demo and its node.
type demoUser struct {
	name string
	m    *testnet.Member
	c    appv1.MessagingClient
	id   []byte
}

// demoChat is one chat of the demo.
type demoChat struct {
	title  string
	id     []byte
	kind   chatv1.ChatType
	public string
	users  []*demoUser
	// clocks are each user's Lamport clock in the chat.
	clocks map[string]*chat.Clock
}

// demoSent is a message the demo sent and expects everywhere.
type demoSent struct {
	chat *demoChat
	from *demoUser
	id   []byte
	at   time.Time
	// key finds it in another node's history (demoKey): in a public chat
	// the message id is the privacy layer's (whisper's envelope hash), not
	// the one Send returned.
	key string
}

// demoKey is what identifies a message on every node: its author and its
// payload, which the chat clock makes unique per author.
func demoKey(author, payload []byte) string { return string(author) + string(payload) }

// send sends a chat payload from u to ch through u's API.
func (ch *demoChat) send(ctx context.Context, u *demoUser, p *chatv1.ChatPayload) (*demoSent, error) {
	clock := ch.clocks[u.name]
	if clock == nil {
		clock = &chat.Clock{}
		ch.clocks[u.name] = clock
	}
	p.Version, p.ChatId, p.ChatType = chat.Version, ch.id, ch.kind
	p.Clock, p.Timestamp = clock.Next(time.Now())
	b, err := chat.Encode(p)
	if err != nil {
		return nil, err
	}
	at := time.Now()
	resp, err := u.c.Send(ctx, &appv1.SendRequest{Conversation: ch.id, Payload: b})
	if err != nil {
		return nil, fmt.Errorf("%s sends to %s: %w", u.name, ch.title, err)
	}
	return &demoSent{chat: ch, from: u, id: resp.GetMessageId(), at: at, key: demoKey(u.id, b)}, nil
}

func demoText(s string) *chatv1.ChatPayload {
	return &chatv1.ChatPayload{ContentType: chatv1.ContentType_CONTENT_TYPE_TEXT, Body: &chatv1.ChatPayload_Text{Text: &chatv1.Text{Text: s}}}
}

func demoEvent(t chatv1.MembershipType, actor []byte, name string, members ...[]byte) *chatv1.ChatPayload {
	return &chatv1.ChatPayload{ContentType: chatv1.ContentType_CONTENT_TYPE_MEMBERSHIP, Body: &chatv1.ChatPayload_Membership{
		Membership: &chatv1.MembershipEvent{Type: t, Actor: actor, Members: members, Name: name}}}
}

// history returns u's stored messages of conversation conv.
func (u *demoUser) history(ctx context.Context, conv []byte) ([]*appv1.Message, error) {
	var out []*appv1.Message
	var after uint64
	for {
		resp, err := u.c.History(ctx, &appv1.HistoryRequest{Conversation: conv, After: after})
		if err != nil {
			return nil, fmt.Errorf("%s's history: %w", u.name, err)
		}
		if len(resp.GetMessages()) == 0 {
			return out, nil
		}
		out = append(out, resp.GetMessages()...)
		after = resp.GetMessages()[len(resp.GetMessages())-1].GetCursor()
	}
}

// waitUntil polls cond every 50 ms until it holds, fails, or the deadline
// passes.
func waitUntil(ctx context.Context, deadline time.Time, what string, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func runChatDemo(ctx context.Context, env Env, out io.Writer, o chatDemoOptions) error {
	if o.messages < 1 {
		return fmt.Errorf("--messages must be at least 1")
	}
	dir := o.dataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "strata-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	stack := o.stack
	if stack == "" {
		pluginDir, err := filepath.Abs(o.pluginDir)
		if err != nil {
			return err
		}
		stack = filepath.Join(dir, "stack.yaml")
		if err := os.WriteFile(stack, []byte(fmt.Sprintf(demoStack, pluginDir, o.mode, o.allowUnverified, filepath.Join(dir, "stack"))), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "three users on 127.0.0.1: libp2p + mixnet + mls + bsp, plugins as %s\n", o.mode)
	} else {
		fmt.Fprintf(out, "three users on 127.0.0.1: the stack of %s\n", o.stack)
	}
	opts := testnet.Options{
		Stack: stack, Nodes: 3, Relays: testnet.AutoRelays, Dir: dir, Catalog: env.Catalog,
		AllowUnverified: o.allowUnverified, StopTimeout: 5 * time.Second,
	}
	if o.verbose {
		opts.Log = env.Stderr
	}
	began := time.Now()
	net, err := testnet.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer net.Close(context.Background())
	deadline := time.Now().Add(o.timeout)
	var users []*demoUser
	for i, m := range net.Clients() {
		users = append(users, &demoUser{name: []string{"alice", "bob", "carol"}[i], m: m, c: m.Client(), id: m.Identity()})
	}
	alice, bob, carol := users[0], users[1], users[2]
	var relays []string
	for _, r := range net.Relays() {
		relays = append(relays, r.Name)
	}
	fmt.Fprintf(out, "started in %v: alice (%s), bob (%s), carol (%s)", time.Since(began).Round(time.Millisecond), alice.m.Name, bob.m.Name, carol.m.Name)
	if len(relays) > 0 {
		fmt.Fprintf(out, " and %d relay%s", len(relays), plural(len(relays)))
	}
	fmt.Fprintln(out)
	if err := net.IntroduceAll(ctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "each imported the others' contact cards")

	var sent []*demoSent
	// The users take turns, as people chatting do: each message is
	// written once the one before it arrived everywhere.
	await := func(s *demoSent) error {
		sent = append(sent, s)
		return waitUntil(ctx, deadline, "a message to arrive", func() (bool, error) {
			for _, u := range s.chat.users {
				if u == s.from {
					continue
				}
				msgs, err := u.history(ctx, s.chat.id)
				if err != nil {
					return false, err
				}
				if !slices.ContainsFunc(msgs, func(m *appv1.Message) bool { return demoKey(m.GetAuthor(), m.GetPayload()) == s.key }) {
					return false, nil
				}
			}
			return true, nil
		})
	}
	var awaitErr error
	newChat := func(title string, id []byte, kind chatv1.ChatType, us ...*demoUser) *demoChat {
		return &demoChat{title: title, id: id, kind: kind, users: us, clocks: map[string]*chat.Clock{}}
	}

	// 1:1: alice and bob, each side sets up the conversation both derive
	// (as strata send --to does).
	dm := newChat("1:1 alice & bob", conversations.DirectID(alice.id, bob.id), chatv1.ChatType_CHAT_TYPE_ONE_TO_ONE, alice, bob)
	for _, p := range [][2]*demoUser{{alice, bob}, {bob, alice}} {
		if _, err := p[0].c.SetConversation(ctx, &appv1.SetConversationRequest{Id: dm.id, Members: [][]byte{p[1].id}}); err != nil {
			return fmt.Errorf("%s sets up the 1:1 chat: %w", p[0].name, err)
		}
	}
	for i := 1; i <= o.messages && awaitErr == nil; i++ {
		for _, p := range [][2]*demoUser{{alice, bob}, {bob, alice}} {
			s, err := dm.send(ctx, p[0], demoText(fmt.Sprintf("hi %s, %d from %s", p[1].name, i, p[0].name)))
			if err != nil {
				return err
			}
			if awaitErr = await(s); awaitErr != nil {
				break
			}
		}
	}

	if awaitErr != nil {
		return fmt.Errorf("demo incomplete: in the 1:1 chat, %w", awaitErr)
	}

	// A private group: alice creates the conversation (the node announces
	// it to bob and carol), then the group by its create event; bob and
	// carol join once invited.
	group := newChat("group \"friends\"", []byte("friends-"+alice.m.Fingerprint()[:4]), chatv1.ChatType_CHAT_TYPE_PRIVATE_GROUP, alice, bob, carol)
	if _, err := alice.c.SetConversation(ctx, &appv1.SetConversationRequest{Id: group.id, Members: [][]byte{bob.id, carol.id}, Name: "friends"}); err != nil {
		return fmt.Errorf("alice creates the group: %w", err)
	}
	for _, u := range []*demoUser{bob, carol} {
		if err := waitUntil(ctx, deadline, u.name+"'s node to learn of the group", func() (bool, error) {
			_, err := u.c.Members(ctx, &appv1.MembersRequest{Conversation: group.id})
			if status.Code(err) == codes.NotFound {
				return false, nil
			}
			return err == nil, err
		}); err != nil {
			return err
		}
	}
	if _, err := group.send(ctx, alice, demoEvent(chatv1.MembershipType_MEMBERSHIP_TYPE_CREATE, alice.id, "friends", bob.id, carol.id)); err != nil {
		return err
	}
	roleOf := func(u, of *demoUser) (appv1.MemberRole, error) {
		resp, err := u.c.Members(ctx, &appv1.MembersRequest{Conversation: group.id})
		if err != nil {
			return 0, err
		}
		for _, m := range resp.GetMembers() {
			if bytes.Equal(m.GetIdentity(), of.id) {
				return m.GetRole(), nil
			}
		}
		return 0, nil
	}
	for _, u := range []*demoUser{bob, carol} {
		if err := waitUntil(ctx, deadline, u.name+" to be invited", func() (bool, error) {
			r, err := roleOf(u, u)
			return r == appv1.MemberRole_MEMBER_ROLE_INVITED, err
		}); err != nil {
			return err
		}
		if _, err := group.send(ctx, u, demoEvent(chatv1.MembershipType_MEMBERSHIP_TYPE_JOIN, u.id, "")); err != nil {
			return err
		}
	}
	for _, u := range group.users {
		for _, of := range []*demoUser{bob, carol} {
			if err := waitUntil(ctx, deadline, u.name+" to see "+of.name+" join", func() (bool, error) {
				r, err := roleOf(u, of)
				return r == appv1.MemberRole_MEMBER_ROLE_MEMBER, err
			}); err != nil {
				return err
			}
		}
	}
	fmt.Fprintln(out, "alice created the private group \"friends\"; bob and carol joined")
	for i := 1; i <= o.messages && awaitErr == nil; i++ {
		for _, u := range group.users {
			s, err := group.send(ctx, u, demoText(fmt.Sprintf("%s to the group, %d", u.name, i)))
			if err != nil {
				return err
			}
			if awaitErr = await(s); awaitErr != nil {
				break
			}
		}
	}

	// A public chat, where the privacy layer has them.
	chats := []*demoChat{dm, group}
	public := newChat("public #"+demoPublicChat, conversations.PublicChatID(demoPublicChat), chatv1.ChatType_CHAT_TYPE_PUBLIC, alice, bob, carol)
	public.public = demoPublicChat
	publicNote := ""
	for _, u := range public.users {
		_, err := u.c.JoinPublicChat(ctx, &appv1.JoinPublicChatRequest{Name: demoPublicChat})
		if status.Code(err) == codes.FailedPrecondition {
			publicNote = "public chat: not run: " + status.Convert(err).Message() + " (whisper, mixnet and none over libp2p have them)"
			break
		}
		if err != nil {
			return fmt.Errorf("%s joins #%s: %w", u.name, demoPublicChat, err)
		}
	}
	if publicNote == "" {
		chats = append(chats, public)
		// Public chats are best effort, with no sync layer: each user says
		// hello until the others hear it, so that the subscriptions are in
		// place before the messages that count.
		for _, u := range public.users {
			if err := waitUntil(ctx, deadline, "the others to hear "+u.name+" in #"+demoPublicChat, func() (bool, error) {
				if _, err := public.send(ctx, u, demoText(u.name+" is here")); err != nil {
					return false, err
				}
				time.Sleep(200 * time.Millisecond)
				for _, v := range public.users {
					if v == u {
						continue
					}
					msgs, err := v.history(ctx, public.id)
					if err != nil {
						return false, err
					}
					if !slices.ContainsFunc(msgs, func(m *appv1.Message) bool { return bytes.Equal(m.GetAuthor(), u.id) }) {
						return false, nil
					}
				}
				return true, nil
			}); err != nil {
				return err
			}
		}
		for i := 1; i <= o.messages && awaitErr == nil; i++ {
			for _, u := range public.users {
				s, err := public.send(ctx, u, demoText(fmt.Sprintf("%s in public, %d", u.name, i)))
				if err != nil {
					return err
				}
				if awaitErr = await(s); awaitErr != nil {
					break
				}
			}
		}
	}
	if awaitErr != nil && !strings.HasPrefix(awaitErr.Error(), "timed out") {
		return awaitErr
	}

	// Every message everywhere: each user's history of each chat.
	type arrival struct{ at time.Time }
	got := map[string]map[string]arrival{} // user -> message id -> arrival
	missing := func() (int, error) {
		n := 0
		for _, u := range users {
			if got[u.name] == nil {
				got[u.name] = map[string]arrival{}
			}
			for _, ch := range chats {
				if !slices.Contains(ch.users, u) {
					continue
				}
				msgs, err := u.history(ctx, ch.id)
				if err != nil {
					return 0, err
				}
				for _, m := range msgs {
					got[u.name][demoKey(m.GetAuthor(), m.GetPayload())] = arrival{at: time.Unix(0, m.GetTimeUnixNano())}
				}
			}
			for _, s := range sent {
				if s.from != u && slices.Contains(s.chat.users, u) {
					if _, ok := got[u.name][s.key]; !ok {
						n++
					}
				}
			}
		}
		return n, nil
	}
	arriveErr := waitUntil(ctx, deadline, "every message to arrive", func() (bool, error) {
		n, err := missing()
		return n == 0, err
	})
	if arriveErr != nil && !strings.HasPrefix(arriveErr.Error(), "timed out") {
		return arriveErr
	}
	lost, err := missing()
	if err != nil {
		return err
	}

	// Read: every user marks every chat read, which sends read receipts
	// in the 1:1 chat and the group; then the receipts come back.
	if lost == 0 {
		for _, ch := range chats {
			for _, u := range ch.users {
				if _, err := u.c.MarkRead(ctx, &appv1.MarkReadRequest{Conversation: ch.id}); err != nil {
					return fmt.Errorf("%s marks %s read: %w", u.name, ch.title, err)
				}
			}
		}
	}
	type receiptCount struct{ messages, delivered, read int }
	receipts := func() (map[*demoChat]*receiptCount, error) {
		out := map[*demoChat]*receiptCount{}
		for _, s := range sent {
			if s.chat.public != "" {
				continue
			}
			rc := out[s.chat]
			if rc == nil {
				rc = &receiptCount{}
				out[s.chat] = rc
			}
			resp, err := s.from.c.Receipts(ctx, &appv1.ReceiptsRequest{Conversation: s.chat.id, MessageIds: [][]byte{s.id}})
			if err != nil {
				return nil, err
			}
			rc.messages++
			for _, r := range resp.GetReceipts() {
				if int(r.GetRecipients()) == len(s.chat.users)-1 {
					if len(r.GetDeliveredTo()) == int(r.GetRecipients()) {
						rc.delivered++
					}
					if len(r.GetReadBy()) == int(r.GetRecipients()) {
						rc.read++
					}
				}
			}
		}
		return out, nil
	}
	var counts map[*demoChat]*receiptCount
	receiptDeadline := time.Now().Add(10 * time.Second)
	if receiptDeadline.After(deadline) {
		receiptDeadline = deadline
	}
	_ = waitUntil(ctx, receiptDeadline, "the receipts", func() (bool, error) {
		var err error
		if counts, err = receipts(); err != nil {
			return false, err
		}
		for _, rc := range counts {
			if rc.delivered < rc.messages || (lost == 0 && rc.read < rc.messages) {
				return false, nil
			}
		}
		return true, nil
	})

	// The conversations as each user sees them.
	nameOf := map[string]string{}
	for _, u := range users {
		nameOf[string(u.id)] = u.name
	}
	for _, ch := range chats {
		for _, u := range ch.users {
			if err := printTimeline(ctx, out, ch, u, nameOf); err != nil {
				return err
			}
		}
	}

	// The summary.
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "chat\tsent\tarrived\tlatency p50\tp95\tmax\tdelivered receipts\tread receipts")
	for _, ch := range chats {
		var lat []time.Duration
		want, arrived, nsent := 0, 0, 0
		for _, s := range sent {
			if s.chat != ch {
				continue
			}
			nsent++
			for _, u := range ch.users {
				if u == s.from {
					continue
				}
				want++
				if a, ok := got[u.name][s.key]; ok {
					arrived++
					lat = append(lat, max(a.at.Sub(s.at), 0))
				}
			}
		}
		slices.Sort(lat)
		p := func(q int) string {
			if len(lat) == 0 {
				return "-"
			}
			return pct(lat, q).Round(100 * time.Microsecond).String()
		}
		dr, rr := "-", "-"
		if rc := counts[ch]; rc != nil {
			dr = fmt.Sprintf("%d/%d to all", rc.delivered, rc.messages)
			rr = fmt.Sprintf("%d/%d by all", rc.read, rc.messages)
		}
		fmt.Fprintf(w, "%s\t%d\t%d/%d\t%s\t%s\t%s\t%s\t%s\n", ch.title, nsent, arrived, want, p(50), p(95), p(100), dr, rr)
	}
	w.Flush()
	for _, u := range users {
		st, err := u.c.Stats(ctx, &appv1.StatsRequest{})
		if err != nil {
			return err
		}
		if k := st.GetMessages()["dropped_chat"]; k > 0 {
			fmt.Fprintf(out, "%s's node refused %d chat payload%s\n", u.name, k, plural(int(k)))
		}
	}
	if publicNote != "" {
		fmt.Fprintln(out, publicNote)
	}
	if lost > 0 {
		return fmt.Errorf("demo incomplete: %d deliveries of %d messages did not arrive within %v", lost, len(sent), o.timeout)
	}
	fmt.Fprintf(out, "\ndemo ok: every message arrived everywhere (%d messages, %v)\n", len(sent), time.Since(began).Round(time.Millisecond))
	return nil
}

// eventVerbs say what a membership event did.
var eventVerbs = map[chatv1.MembershipType]string{
	chatv1.MembershipType_MEMBERSHIP_TYPE_CREATE:       "created the group",
	chatv1.MembershipType_MEMBERSHIP_TYPE_INVITE:       "invited",
	chatv1.MembershipType_MEMBERSHIP_TYPE_JOIN:         "joined",
	chatv1.MembershipType_MEMBERSHIP_TYPE_LEAVE:        "left",
	chatv1.MembershipType_MEMBERSHIP_TYPE_REMOVE:       "removed",
	chatv1.MembershipType_MEMBERSHIP_TYPE_ADMIN_ADD:    "made admin",
	chatv1.MembershipType_MEMBERSHIP_TYPE_ADMIN_REMOVE: "took admin from",
}

// printTimeline prints chat ch as user u's client shows it: the history
// through host/chat's Timeline, in causal order, with the receipts of
// u's own messages.
func printTimeline(ctx context.Context, out io.Writer, ch *demoChat, u *demoUser, nameOf map[string]string) error {
	msgs, err := u.history(ctx, ch.id)
	if err != nil {
		return err
	}
	tl := chat.NewTimeline(ch.id, u.id, ch.public)
	for _, m := range msgs {
		_, _ = tl.Add(chat.FromAPI(m)) // a refusal is counted, and not shown
	}
	name := func(id []byte) string {
		if n := nameOf[string(id)]; n != "" {
			return n
		}
		return "someone"
	}
	fmt.Fprintf(out, "\n%s, as %s sees it:\n", ch.title, u.name)
	for _, e := range tl.Entries() {
		at := e.Message.Timestamp.Format("15:04:05.000")
		switch {
		case e.Message.Unsupported:
			fmt.Fprintf(out, "  %s  %s: (unsupported message: %s)\n", at, name(e.Author), e.Message.UnsupportedWhy)
		case e.Message.Event != nil:
			ev := e.Message.Event
			var whom []string
			for _, m := range ev.Members {
				whom = append(whom, name(m))
			}
			line := name(e.Author) + " " + eventVerbs[ev.Type]
			switch {
			case ev.Type == chatv1.MembershipType_MEMBERSHIP_TYPE_CREATE:
				line += fmt.Sprintf(" %q, inviting %s", ev.Name, strings.Join(whom, ", "))
			case len(whom) > 0:
				line += " " + strings.Join(whom, ", ")
			}
			fmt.Fprintf(out, "  %s  · %s\n", at, escapeText(line))
		default:
			state := ""
			if bytes.Equal(e.Author, u.id) && ch.public == "" {
				state = fmt.Sprintf("   [delivered %d/%d", len(e.DeliveredTo), tl.Recipients(e))
				var readers []string
				for k := range e.ReadBy {
					readers = append(readers, name([]byte(k)))
				}
				slices.Sort(readers)
				if len(readers) > 0 {
					state += ", read by " + strings.Join(readers, ", ")
				}
				state += "]"
			}
			late := ""
			if e.Late {
				late = " (arrived late, slotted in)"
			}
			fmt.Fprintf(out, "  %s  %s: %s%s%s\n", at, name(e.Author), escapeText(e.Text), late, state)
		}
	}
	if c := tl.Counts(); len(c) > 0 {
		var parts []string
		for r, k := range c {
			parts = append(parts, fmt.Sprintf("%s %d", r, k))
		}
		slices.Sort(parts)
		fmt.Fprintf(out, "  (refused: %s)\n", strings.Join(parts, ", "))
	}
	return nil
}
