package mixnet

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/strata-msg/strata/core/sdk/atrest"
	"github.com/strata-msg/strata/plugins/mixnet/loopix"
	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

// SharedPositionsFile holds a client's positions in the shared mailboxes
// it follows, sealed with the at-rest key when there is one (the mailbox
// ids tell which chats the user follows).
const SharedPositionsFile = "shared.positions"

const positionsPurpose = "mixnet shared positions"

// Positions are saved at most this often, and resumed this many entries
// back: an entry taken just before a crash may belong to a message whose
// other fragments come after it, and whose first fragments the saved
// position would skip (the host keeps one copy of what comes twice).
const (
	positionsEvery  = time.Second
	positionsReread = 64
	maxPositions    = 256
)

// positions is what the layer keeps of the client's shared positions:
// those loaded at start (until the host subscribes again) and those of
// the chats followed now. Owned by the loop.
type positions struct {
	path  string
	saved map[loopix.MailboxID]loopix.SharedPosition
	last  time.Time
	dirty bool // a chat was forgotten
}

// loadPositions reads the file, if there is one.
func loadPositions(dir string, k *atrest.Key) (*positions, error) {
	p := &positions{path: filepath.Join(dir, SharedPositionsFile), saved: map[loopix.MailboxID]loopix.SharedPosition{}}
	text, err := atrest.ReadFile(p.path, k, positionsPurpose)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mixnet: shared positions %s: %w", p.path, err)
	}
	for line := range strings.Lines(string(text)) {
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("mixnet: shared positions %s: bad line", p.path)
		}
		id, err1 := hex.DecodeString(f[0])
		prov, err2 := hex.DecodeString(f[1])
		pos, err3 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || len(id) != sphinx.RecipientIDLength || len(prov) != sphinx.NodeIDLength || len(p.saved) >= maxPositions {
			return nil, fmt.Errorf("mixnet: shared positions %s: bad line", p.path)
		}
		p.saved[loopix.MailboxID(id)] = loopix.SharedPosition{Provider: sphinx.NodeID(prov), Pos: pos}
	}
	return p, nil
}

// resume gives a chat just followed its stored position, some entries
// back.
func (p *positions) resume(c *loopix.Client, id loopix.MailboxID) {
	if sp, ok := p.saved[id]; ok && sp.Pos > positionsReread {
		sp.Pos -= positionsReread
		c.ResumeShared(id, sp)
	}
}

// forget drops a chat no longer followed.
func (p *positions) forget(id loopix.MailboxID) {
	if _, ok := p.saved[id]; ok {
		delete(p.saved, id)
		p.dirty = true
	}
}

// save writes the positions when they changed, at most every
// positionsEvery. It runs after the loop emitted what the client
// delivered, so a stored position never passes an entry not handed up.
func (p *positions) save(c *loopix.Client, now time.Time, k *atrest.Key) error {
	if now.Sub(p.last) < positionsEvery {
		return nil
	}
	return p.saveMap(c.SharedPositions(), now, k)
}

// saveMap writes the stored positions updated with cur, if that changes
// them.
func (p *positions) saveMap(cur map[loopix.MailboxID]loopix.SharedPosition, now time.Time, k *atrest.Key) error {
	next := maps.Clone(p.saved)
	maps.Copy(next, cur)
	if !p.dirty && maps.Equal(next, p.saved) {
		return nil
	}
	p.last = now
	var b strings.Builder
	for id, sp := range next {
		fmt.Fprintf(&b, "%x %x %d\n", id[:], sp.Provider[:], sp.Pos)
	}
	if err := os.MkdirAll(filepath.Dir(p.path), 0o700); err != nil {
		return err
	}
	if err := atrest.WriteFile(p.path, k, positionsPurpose, []byte(b.String())); err != nil {
		return err
	}
	p.saved, p.dirty = next, false
	return nil
}
