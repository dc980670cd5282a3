package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-msg/strata/core/pipeline"
	"github.com/strata-msg/strata/host/chat"
	"github.com/strata-msg/strata/host/conversations"
	"github.com/strata-msg/strata/host/identity"
)

// The history writer takes what reaches the application's side of the
// stack off the routing goroutines. A routing goroutine only queues the
// messages; one writer goroutine per node opens their envelopes, checks
// their authors, writes them to the history (one transaction for all
// that is queued), then acknowledges them to the top layer and hands them
// to Options.Deliver, in that order. So a slow disk slows nothing but the
// writer until its queue is full, and nothing is acknowledged before it is
// on disk: a message queued but not written when the host dies was not
// acknowledged, and the sync layer delivers it again.
//
// Two queues, both bounded in bytes. The top layer's deliveries wait for
// room (flow control, as everywhere else in the stack: the sync layer
// holds them durably until they are acknowledged). Public chat messages,
// which anyone who knows a chat's name can send, are dropped when their
// queue is full (counted as dropped_public_backlog): they must never hold
// up the privacy layer's routing, which carries every private message too.

// Bounds of the writer's queues, in bytes of payload (plus inboundCost per
// message).
const (
	topQueueBytes    = 16 << 20
	publicQueueBytes = 4 << 20
	inboundCost      = 256
	// maxWriteBatch bounds the messages of one history transaction.
	maxWriteBatch = 4096
)

// inbound is a batch of messages that crossed boundary b toward the
// application: Payload is what the layer carried (a signed envelope) and
// Author whom the layer names as the author (nil: nobody).
type inbound struct {
	b    *pipeline.Boundary
	msgs []*conversations.Message
	// top: they came through the top of the stack (acknowledged to the
	// top layer once handled); else they are a public chat's.
	top  bool
	size int
}

// inboundQueue is a FIFO of inbound batches bounded in bytes.
type inboundQueue struct {
	max   int
	mu    sync.Mutex
	items []*inbound
	bytes int
	// freed is closed, and replaced, whenever items are taken.
	freed chan struct{}
}

func newInboundQueue(max int) *inboundQueue {
	return &inboundQueue{max: max, freed: make(chan struct{})}
}

// push queues in. With wait it waits for room until ctx or stop ends
// (false); without, it returns false at once when the queue is full. A
// batch larger than the whole bound is taken when the queue is empty.
func (q *inboundQueue) push(ctx context.Context, stop <-chan struct{}, in *inbound, wait bool) bool {
	for {
		q.mu.Lock()
		if q.bytes == 0 || q.bytes+in.size <= q.max {
			q.items = append(q.items, in)
			q.bytes += in.size
			q.mu.Unlock()
			return true
		}
		freed := q.freed
		q.mu.Unlock()
		if !wait {
			return false
		}
		select {
		case <-freed:
		case <-ctx.Done():
			return false
		case <-stop:
			return false
		}
	}
}

// take removes batches from the front, up to about max messages (at least
// one batch when there is one).
func (q *inboundQueue) take(max int) []*inbound {
	q.mu.Lock()
	defer q.mu.Unlock()
	k, n := 0, 0
	for k < len(q.items) && (k == 0 || n+len(q.items[k].msgs) <= max) {
		n += len(q.items[k].msgs)
		q.bytes -= q.items[k].size
		k++
	}
	if k == 0 {
		return nil
	}
	out := append([]*inbound(nil), q.items[:k]...)
	q.items = append(q.items[:0], q.items[k:]...)
	close(q.freed)
	q.freed = make(chan struct{})
	return out
}

// writer is the node's history writer.
type writer struct {
	n           *Node
	top, public *inboundQueue
	wake        chan struct{}
	// chat is what the node knows of its chat conversations (chat.go):
	// it checks chat payloads in open and follows the history's writes.
	chat *chatState
}

// newWriter makes the node's history writer, once the history is made,
// and has the history's writes followed by the node's chat state.
func newWriter(n *Node) *writer {
	w := &writer{n: n, top: newInboundQueue(topQueueBytes), public: newInboundQueue(publicQueueBytes), wake: make(chan struct{}, 1), chat: newChatState(n)}
	if n.hist != nil {
		n.hist.observe = w.chat.observe
	}
	return w
}

// queue hands messages that crossed boundary b to the writer. Top
// deliveries wait for room; public chat messages that find none are
// dropped and counted.
func (w *writer) queue(ctx context.Context, b *pipeline.Boundary, msgs []*conversations.Message, top bool) {
	in := &inbound{b: b, msgs: msgs, top: top}
	for _, m := range msgs {
		in.size += inboundCost + len(m.Payload)
	}
	q := w.public
	if top {
		q = w.top
	}
	if !q.push(ctx, w.n.ctx.Done(), in, top) {
		if top {
			// The node is closing: not acknowledged, so delivered again.
			return
		}
		w.n.msgStats.count(dropPublicBacklog, uint64(len(msgs)), w.n, "", nil)
		return
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run writes what is queued until ctx ends, then what is left, so that a
// node that closes in order writes what it took. Its writes are not cut
// short when ctx ends, only drainTimeout later.
func (w *writer) run(ctx context.Context) {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(drainTimeout, cancel) })
	defer stop()
	for {
		select {
		case <-ctx.Done():
			for w.writeQueued(wctx) {
			}
			return
		case <-w.wake:
		}
		for w.writeQueued(wctx) {
		}
	}
}

// drainTimeout bounds the writes of what is queued when the node closes.
const drainTimeout = 5 * time.Second

// writeQueued writes one transaction's worth of what is queued, top
// deliveries first, and reports whether there was anything.
func (w *writer) writeQueued(ctx context.Context) bool {
	jobs := w.top.take(maxWriteBatch)
	n := 0
	for _, j := range jobs {
		n += len(j.msgs)
	}
	if n < maxWriteBatch {
		jobs = append(jobs, w.public.take(maxWriteBatch-n)...)
	}
	if len(jobs) == 0 {
		return false
	}
	w.n.take(ctx, jobs)
	return true
}

// take opens, checks, stores, acknowledges and delivers queued messages.
func (n *Node) take(ctx context.Context, jobs []*inbound) {
	cache := convCache{}
	var store, acks []*conversations.Message
	var why map[*conversations.Message]string // the refused ones of acks
	from := map[*conversations.Message]*inbound{}
	for _, j := range jobs {
		for _, m := range j.msgs {
			switch v, err := n.open(ctx, m, j.top, cache); v {
			case refused:
				if j.top && len(m.MessageID) > 0 {
					// Refused for good: never deliver it again, and the
					// sync layer's verdict says so (the validator hook).
					acks = append(acks, m)
					if why == nil {
						why = map[*conversations.Message]string{}
					}
					why[m] = err.Error()
				}
				continue
			case unchecked:
				// Neither taken nor acknowledged: delivered again after
				// the layer's next start.
				j.b.Drop(pipeline.DropStoreError, 1)
				n.log.Error("could not check a received message; it is not delivered", "error", err)
				continue
			}
			if isHostMessage(m.Payload) {
				// Host messages are the host's: taken here, acknowledged,
				// never in the history nor handed to the application. They
				// are taken only from the top of the stack of a stack that
				// authenticates the member a frame comes from (a secure
				// layer): a public chat's, or a relay's, are dropped.
				if !j.top || !n.authenticated() {
					n.announced.malformed.Add(1)
					n.log.Warn("dropped a host message from outside the top of a stack with a secure layer (a public chat's, or on a relay)")
				} else {
					n.takeHostMessage(ctx, m.Author, m.Payload)
				}
				if j.top {
					acks = append(acks, m)
				}
				continue
			}
			n.storeDirect(ctx, m)
			store = append(store, m)
			from[m] = j
		}
	}
	if len(store) > 0 {
		res, err := n.hist.append(ctx, store)
		if err != nil {
			for _, m := range store {
				from[m].b.Drop(pipeline.DropStoreError, 1)
			}
			n.log.Error("could not store received messages; they are not delivered", "messages", len(store), "error", err)
			// Not acknowledged: the sync layer delivers them again after
			// its next start. What was refused is acknowledged all the same.
			n.acks.queue(acks, why)
			return
		}
		for _, m := range res.Replayed {
			n.msgStats.count(dropReplayed, 1, n, "the message's envelope is in the conversation already, under another id", m.Author)
		}
		for _, m := range res.OverQuota {
			n.msgStats.count(dropPublicOverQuota, 1, n, "a public chat message larger than public.max_bytes_per_chat", m.Author)
		}
		n.msgStats.evicted.Add(uint64(res.Evicted))
		for _, m := range store {
			if from[m].top {
				acks = append(acks, m) // stored, or already there
			}
		}
		n.acks.queue(acks, why)
		n.handOver(res.Added)
		return
	}
	n.acks.queue(acks, why)
}

// open checks a message that crossed toward the application: its payload
// must be a signed envelope that verifies, written for the conversation
// the layer delivered it in, by the author the layer names (if it names
// one) and, through the top of the stack, by a member of the conversation;
// anyone may write to a public chat. On success the message's author,
// payload and envelope id are the envelope's, and a message the layer did
// not name is named by its envelope id. A message that fails is counted
// and reported refused, with a *refusal that says why; one that could not
// be checked (the store failed) is neither taken nor refused.
func (n *Node) open(ctx context.Context, m *conversations.Message, top bool, cache convCache) (verdict, error) {
	claimed := m.Author
	o, err := openEnvelope(m.Payload)
	switch {
	case errors.Is(err, errForged):
		return refused, n.refuse(dropForgedAuthor, err.Error(), claimed)
	case err != nil:
		return refused, n.refuse(dropMalformed, err.Error(), claimed)
	case !bytes.Equal(o.conversation, m.Conversation):
		return refused, n.refuse(dropWrongConversation, fmt.Sprintf("signed for conversation %x, delivered in %x", o.conversation, m.Conversation), o.author)
	case !top && n.cfg.Public.Retention > 0 && o.sent.Before(time.Now().Add(-n.cfg.Public.Retention)):
		// The history has forgotten it, so it would be new again: a
		// public chat message is live traffic, not history to catch up on.
		return refused, n.refuse(dropExpired, fmt.Sprintf("a public chat message sent %s, longer ago than public.retention", o.sent.UTC().Format(time.RFC3339)), o.author)
	case top && len(claimed) > 0 && !bytes.Equal(claimed, o.author):
		// The sync layer names an author that did not sign it: a member
		// relayed it as another member.
		return refused, n.refuse(dropForgedAuthor, fmt.Sprintf("signed by %s, delivered as %s's", n.displayName(o.author), n.displayName(claimed)), claimed)
	}
	if top {
		ok, err := n.mayWrite(ctx, o.author, m.Conversation, cache)
		if err != nil {
			return unchecked, err
		}
		if !ok {
			if n.writer.chat.removed(m.Conversation, o.author) {
				// A member a private group's events removed, who keeps
				// sending.
				return refused, n.writer.chat.countRemoved(o.author)
			}
			return refused, n.refuse(dropNotMember, "the author is not a member of the conversation", o.author)
		}
	}
	if chat.IsPayload(o.payload) {
		c, err := cache.get(ctx, n.convs, m.Conversation)
		if errors.Is(err, conversations.ErrNotFound) {
			c = nil
		} else if err != nil {
			return unchecked, err
		}
		if err := n.writer.chat.check(ctx, m, c, o); err != nil {
			return refused, err
		}
	}
	m.Author, m.Payload, m.EnvelopeID = o.author, o.payload, o.id
	if len(m.MessageID) == 0 {
		m.MessageID = o.id
	}
	return taken, nil
}

// verdict is what Node.open decided.
type verdict int

const (
	taken verdict = iota
	refused
	unchecked
)

// mayWrite reports whether author is a member of conversation conv as this
// node knows it: stored, or the 1:1 conversation with a contact (which
// both sides derive, so its first message may come before it is stored).
// A conversation the node does not know is refused where layers take
// members (they know every conversation the host does, and nothing else
// comes up through them); on a stack without such layers (a relay's),
// where conversations are not announced, its signer is its author.
func (n *Node) mayWrite(ctx context.Context, author ed25519.PublicKey, conv []byte, cache convCache) (bool, error) {
	c, err := cache.get(ctx, n.convs, conv)
	switch {
	case err == nil && c.PublicChat != "":
		return false, nil // public chats never come through the top
	case err == nil:
		for _, m := range c.Members {
			if bytes.Equal(m, author) {
				return true, nil
			}
		}
		return false, nil
	case !errors.Is(err, conversations.ErrNotFound):
		return false, err
	case bytes.Equal(conv, conversations.DirectID(n.id.Public(), author)):
		return !bytes.Equal(author, n.id.Public()) && n.book.knows(author), nil
	}
	// (The privacy layer takes members too, for group frames; it is not
	// one of the layers meant here.)
	sec, _ := adapterOf[*secureAdapter](n)
	syn, _ := adapterOf[*syncAdapter](n)
	return sec == nil && syn == nil, nil
}

// convCache remembers the conversations one batch of received messages
// looked up (Node.take): a batch is mostly of a few conversations, and
// reading one per message was a tenth of the host's CPU under load. A nil
// cache remembers nothing.
type convCache map[string]convLookup

// convLookup is one lookup's result.
type convLookup struct {
	c   *conversations.Conversation
	err error
}

// get reads a conversation through the cache. Only answers the store gave
// (found or not found) are remembered.
func (cache convCache) get(ctx context.Context, convs *conversations.Store, id []byte) (*conversations.Conversation, error) {
	if l, ok := cache[string(id)]; ok {
		return l.c, l.err
	}
	c, err := convs.Get(ctx, id)
	if cache != nil && (err == nil || errors.Is(err, conversations.ErrNotFound)) {
		cache[string(id)] = convLookup{c: c, err: err}
	}
	return c, err
}

// displayName is a contact's name, else the key's fingerprint.
func (n *Node) displayName(id []byte) string {
	if name := n.book.name(id); name != "" {
		return name
	}
	if len(id) == ed25519.PublicKeySize {
		return identity.Fingerprint(id)
	}
	return "nobody"
}

// handOver gives messages now in the history to Options.Deliver, in
// cursor order.
func (n *Node) handOver(added []*conversations.Message) {
	if n.opts.Deliver == nil {
		return
	}
	for _, m := range added {
		d := Delivery{
			Conversation: m.Conversation,
			Payload:      m.Payload,
			MessageID:    m.MessageID,
			TraceID:      m.TraceID,
			Cursor:       m.Cursor,
		}
		if len(m.Author) > 0 {
			d.From = ed25519.PublicKey(m.Author)
			d.FromName = n.book.name(d.From)
		}
		n.opts.Deliver(d)
	}
}

// Message counters (MessageStats).
type msgCounter int

const (
	dropForgedAuthor msgCounter = iota
	dropWrongConversation
	dropNotMember
	dropMalformed
	dropReplayed
	dropExpired
	dropPublicBacklog
	dropPublicOverQuota
	dropChat
	numDropCounters
)

var msgCounterNames = [numDropCounters]string{
	dropForgedAuthor:      "dropped_forged_author",
	dropWrongConversation: "dropped_wrong_conversation",
	dropNotMember:         "dropped_not_member",
	dropMalformed:         "dropped_malformed",
	dropReplayed:          "dropped_replayed",
	dropExpired:           "dropped_expired",
	dropPublicBacklog:     "dropped_public_backlog",
	dropPublicOverQuota:   "dropped_public_over_quota",
	dropChat:              "dropped_chat",
}

// messageStats counts what the host refused of the messages that reached
// it, and what it removed from public chats' histories.
type messageStats struct {
	dropped [numDropCounters]atomic.Uint64
	// evicted: public chat messages removed by the quota on insert;
	// pruned: by the periodic prune.
	evicted, pruned atomic.Uint64
}

// count adds k to counter c and logs the refusal, for the first time and
// then at every power of two, so that a flood cannot flood the log.
func (s *messageStats) count(c msgCounter, k uint64, n *Node, why string, author []byte) {
	v := s.dropped[c].Add(k)
	if bits.Len64(v) == bits.Len64(v-k) {
		return // no power of two crossed
	}
	n.log.Warn("refused a message", "reason", msgCounterNames[c], "detail", why, "author", n.displayName(author), "count", v)
}

// MessageStats returns what the host refused of the messages that reached
// it, by reason (dropped_forged_author, dropped_wrong_conversation,
// dropped_not_member, dropped_malformed, dropped_replayed, dropped_expired,
// dropped_public_backlog, dropped_public_over_quota), and what it removed
// from public chats' histories (evicted_public by the quota on insert,
// pruned_public by the periodic prune). Chat payloads refused on receipt
// are dropped_chat in all and dropped_chat_<reason> by host/chat's
// reason; chat_unsupported counts those stored as unsupported (chat.go).
func (n *Node) MessageStats() map[string]uint64 {
	s := &n.msgStats
	out := make(map[string]uint64, int(numDropCounters)+3+len(chatReasons))
	for c, name := range msgCounterNames {
		out[name] = s.dropped[c].Load()
	}
	out["evicted_public"] = s.evicted.Load()
	out["pruned_public"] = s.pruned.Load()
	if n.writer != nil {
		n.writer.chat.counters(out)
	}
	return out
}
