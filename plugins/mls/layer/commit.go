package layer

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"time"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/plugins/mls/group"
	"github.com/strata-msg/strata/plugins/mls/treemath"
	"github.com/strata-msg/strata/plugins/mls/wire"
)

// Who commits. The host gives every member the same member list
// (SetConversation). The members that stay in the group (in the group now
// and in the list) sorted by identity are the commit order: the first
// commits the difference (Adds of the listed members not in the group,
// Removes of the members not listed) at once; the k-th does it only if the
// group has not changed epoch for k × takeover_timeout. A new group is
// created by the lowest listed identity alone. A member the list leaves
// out never commits (RFC 9420 forbids a Commit that removes its sender).
// A group of two is created only when it is needed (lazy.go).

// addition is a member to add with the KeyPackage chosen for it.
type addition struct {
	identity []byte
	kp       wire.KeyPackage
	ref      []byte // set for a one-time KeyPackage
}

// reconcile commits what the host asked for, if it is this member's turn;
// l.mu is held.
func (l *Layer) reconcile(c *conv) {
	if c.desired == nil || c.removed || !c.wants(l.self) {
		return
	}
	if c.g == nil {
		if !bytes.Equal(c.desired[0], l.self) {
			return // the lowest member creates the group
		}
		if c.lazy() {
			return // a conversation of two: when it is needed (lazy.go)
		}
		// A conversation of three or more may exist already, this node
		// being added to it: it waits create_wait for a Welcome before it
		// creates the group, and does not create it at all while frames
		// of the group wait here for one.
		if len(c.desired) > 2 && l.now().Before(c.since.Add(l.cfg.createWait())) || l.hasOrphans(c.id) {
			return
		}
		g, err := group.Create(l.groupConfig(), l.cs, c.id, l.ident, nil)
		if err != nil {
			l.env.Logger.Error("could not create a group", "conversation", c.id, "error", err)
			return
		}
		c.g, c.since = g, l.now()
		c.enter(0, nil, c.since)
		c.createdHere = true
		c.leafAt = c.since
		l.markDirty(c)
	}
	if !c.live() {
		return
	}
	key := syncKey{g: c.g, epoch: c.g.Epoch(), gen: c.gen}
	if c.synced == key {
		return // nothing to change, and nothing has changed since
	}
	members := c.members()
	// Whose turn is it? Cheap checks first: choosing KeyPackages verifies
	// signatures.
	var stay [][]byte
	change := false
	for id := range members {
		if _, ok := c.offers[id]; ok {
			change = true
			continue // being added again: not a member that can commit
		}
		if c.wants([]byte(id)) {
			stay = append(stay, []byte(id))
		} else {
			change = true
		}
	}
	for _, id := range c.desired {
		if _, ok := members[string(id)]; !ok {
			change = true
		}
	}
	if !change {
		c.synced = key
		return
	}
	slices.SortFunc(stay, bytes.Compare)
	k := slices.IndexFunc(stay, func(id []byte) bool { return bytes.Equal(id, l.self) })
	if k < 0 || k > 0 && l.now().Before(c.since.Add(time.Duration(k)*l.cfg.TakeoverTimeout)) {
		return
	}
	var adds []addition
	var removes []treemath.Leaf
	for id, kp := range c.offers {
		if !c.wants([]byte(id)) {
			delete(c.offers, id)
			continue
		}
		if leaf, ok := members[id]; ok {
			removes = append(removes, leaf) // a leaf it cannot use
		}
		adds = append(adds, addition{identity: []byte(id), kp: kp})
	}
	for _, id := range c.desired {
		if _, ok := members[string(id)]; ok || bytes.Equal(id, l.self) {
			continue
		}
		if _, ok := c.offers[string(id)]; ok {
			continue
		}
		a, ok := l.chooseKeyPackage(id)
		if !ok {
			if !c.waitingKP[string(id)] {
				c.waitingKP[string(id)] = true
				l.c.NoKeyPackage.Inc() // once per member and wait
			}
			continue
		}
		delete(c.waitingKP, string(id))
		adds = append(adds, a)
	}
	for id, leaf := range members {
		if _, ok := c.offers[id]; !ok && !c.wants([]byte(id)) {
			removes = append(removes, leaf)
		}
	}
	if len(adds) == 0 && len(removes) == 0 {
		return
	}
	if k > 0 {
		l.c.Takeovers.Inc()
	}
	slices.Sort(removes)
	l.commit(c, adds, removes, l.leafDue(c, l.now()))
}

// chooseKeyPackage picks a contact's KeyPackage: a one-time one not used
// yet, else the last-resort one; l.mu is held.
func (l *Layer) chooseKeyPackage(id []byte) (addition, bool) {
	card, ok := l.contacts[string(id)]
	if !ok || card.Suite != l.cs.ID() {
		return addition{}, false
	}
	now := l.now()
	// Start at a place of the list that depends on this node, so that
	// contacts holding the same card tend to take different KeyPackages.
	start := 0
	if n := len(card.OneTime); n > 0 {
		h := sha256.Sum256(append(bytes.Clone(l.self), id...))
		start = int(h[0]) % n
	}
	for i := range card.OneTime {
		kp := card.OneTime[(start+i)%len(card.OneTime)]
		raw, err := wire.Marshal(&kp)
		if err != nil {
			continue
		}
		ref := l.cs.MakeKeyPackageRef(raw)
		if l.used[string(ref)] || group.ValidateKeyPackage(l.cs, &kp, now) != nil {
			continue
		}
		return addition{identity: id, kp: kp, ref: ref}, true
	}
	if group.ValidateKeyPackage(l.cs, &card.LastResort, now) != nil {
		return addition{}, false
	}
	return addition{identity: id, kp: card.LastResort}, true
}

// commit commits adds and removes (with an UpdatePath if path is set or
// the proposals need one), applies the Commit at once (keeping the state
// before it for the settling window), and sends the Commit to the group
// and the Welcome to each new member; l.mu is held.
func (l *Layer) commit(c *conv, adds []addition, removes []treemath.Leaf, path bool) {
	var props []wire.Proposal
	for _, r := range removes {
		props = append(props, group.RemoveProposal(r))
	}
	for _, a := range adds {
		props = append(props, group.AddProposal(a.kp))
	}
	// The removed members get the Commit addressed to them: the host's
	// group fan-out no longer reaches them.
	var gone [][]byte
	for id, leaf := range c.members() {
		readded := slices.ContainsFunc(adds, func(a addition) bool { return string(a.identity) == id })
		if slices.Contains(removes, leaf) && !readded {
			gone = append(gone, []byte(id))
		}
	}
	before := c.memberList()
	snap := l.takeSnapshot(c, nil)
	pc, err := c.g.Commit(group.CommitOptions{Proposals: props, Path: path})
	if err != nil {
		if snap != nil {
			snap.destroy()
		}
		l.env.Logger.Warn("could not commit", "conversation", c.id, "adds", len(adds), "removes", len(removes), "path", path, "error", err)
		// A KeyPackage the group refuses is not tried again.
		for _, a := range adds {
			if a.ref != nil {
				l.used[string(a.ref)] = true
				l.usedNew = append(l.usedNew, a.ref)
			}
		}
		return
	}
	raw, err := wire.Marshal(pc.Message)
	if err != nil {
		pc.Discard()
		return
	}
	var wraw []byte
	if pc.Welcome != nil {
		if wraw, err = wire.Marshal(pc.Welcome); err != nil {
			pc.Discard()
			return
		}
	}
	env, err := (&envelope{kind: kindCommit, raw: raw}).marshal()
	if err != nil {
		pc.Discard()
		return
	}
	epoch := c.g.Epoch()
	if err := c.g.Merge(pc); err != nil {
		return
	}
	h := commitHash(raw)
	if snap != nil {
		snap.next = h
	}
	c.pushSnapshot(snap)
	now := l.now()
	c.enter(c.g.Epoch(), h, now)
	c.committer = bytes.Clone(l.self)
	var joiners [][]byte
	for _, a := range adds {
		joiners = append(joiners, a.identity)
	}
	slices.SortFunc(joiners, bytes.Compare)
	var welcome []byte
	if wraw != nil {
		// One Welcome serves every new member (an EncryptedGroupSecrets
		// entry each, one GroupInfo with the tree): it names them.
		e := &envelope{kind: kindGroupWelcome, committer: l.self, listed: joiners, path: c.history, raw: wraw}
		if welcome, err = e.marshal(); err != nil {
			l.env.Logger.Error("could not encode a Welcome", "error", err)
		}
	}
	o := &outgoing{epoch: epoch, hash: h, commit: env, welcome: welcome, joiners: map[string]bool{}, pending: map[string]bool{},
		next: now.Add(l.cfg.RetransmitInitial), wait: l.cfg.RetransmitInitial}
	for id := range c.members() {
		if id != string(l.self) {
			o.pending[id] = true
		}
	}
	for _, a := range adds {
		o.joiners[string(a.identity)] = true
		if a.ref != nil {
			l.used[string(a.ref)] = true
			l.usedNew = append(l.usedNew, a.ref)
		}
	}
	if len(o.pending) > 0 {
		c.outbox = append(c.outbox, o)
	}
	for _, a := range adds {
		delete(c.offers, string(a.identity))
	}
	l.c.CommitsMade.Inc()
	// The Commit is for the members that were in the group before it; the
	// new ones join from the Welcome. When there are none (a group being
	// created: the Commit adds everyone but its creator) it goes nowhere:
	// on a mixnet a Commit adding 19 members is four packets of the
	// creator's.
	existing := false
	for id := range o.pending {
		existing = existing || !o.joiners[id]
	}
	if existing {
		l.emit(&commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Conversation: bytes.Clone(c.id), Payload: env})
	}
	for _, id := range gone {
		l.emit(&commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Conversation: bytes.Clone(c.id), Peer: id, Payload: env})
	}
	if welcome != nil {
		l.c.WelcomesSent.Add(uint64(l.sendTo(c, welcome, joiners, l.toGroup(c, len(joiners)))))
	}
	l.epochChanged(c, false, before)
}

// hasOrphans reports whether UP frames of group id wait for its Welcome:
// the group exists elsewhere.
func (l *Layer) hasOrphans(id []byte) bool {
	for _, h := range l.orphans {
		if bytes.Equal(h.f.GetConversation(), id) {
			return true
		}
		if e, err := decodeEnvelope(h.f.GetPayload()); err == nil && e.message != nil {
			if gid, _ := messageGroup(e.message); bytes.Equal(gid, id) {
				return true
			}
		}
	}
	return false
}

// toGroup reports whether a frame that k of the group's other members need
// goes to the whole group once rather than to each of them. On a privacy
// layer with shared addresses a frame for the group is one frame whatever
// the group's size; on one without, the host sends it to every other
// member. The layer does not know which it has, so it sends to the group
// when at least half of the other members need the frame: the cost is
// then at most twice the better route's on either kind of layer, and one
// frame where it matters most (a group forming, a Commit every member
// waits for); l.mu is held.
func (l *Layer) toGroup(c *conv, k int) bool {
	return 2*k >= len(c.members())-1
}

// sendTo sends payload to the group once (toGroup) or to each of ids, and
// returns how many frames it sent; l.mu is held.
func (l *Layer) sendTo(c *conv, payload []byte, ids [][]byte, group bool) int {
	if group {
		l.emit(&commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Conversation: bytes.Clone(c.id), Payload: payload})
		return 1
	}
	for _, id := range ids {
		l.emit(&commonv1.Frame{Direction: commonv1.Direction_DIRECTION_DOWN, Conversation: bytes.Clone(c.id), Peer: bytes.Clone(id), Payload: bytes.Clone(payload)})
	}
	return len(ids)
}
