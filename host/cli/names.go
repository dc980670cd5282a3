package cli

import (
	"bytes"
	"context"
	"strings"

	appv1 "github.com/strata-msg/strata/core/api/app/v1"
	"github.com/strata-msg/strata/host/identity"
)

// names shows who a node knows, as the CLI prints them: a contact by its
// alias or else its card name, the node itself by its name, each escaped
// for the terminal. A name is only what someone chose to call themselves:
// when two of them show the same (ignoring case and spaces), each is
// followed by its fingerprint, so that a second "alice" cannot pass for
// the first.
type names struct {
	client appv1.MessagingClient // nil: no refresh
	self   []byte
	// selfName is the node's own name.
	selfName string
	// shown maps an identity (as a string) to the name it shows.
	shown map[string]string
	// count counts the identities that show each folded name.
	count map[string]int
	// tried holds the identity and name pairs that a refresh did not
	// explain (not a contact, or a name the node no longer gives), so that
	// a stream of them does not ask the node again each time.
	tried map[string]bool
}

// newNames reads the node and its contacts through c.
func newNames(ctx context.Context, c appv1.MessagingClient) (*names, error) {
	n := &names{client: c, tried: map[string]bool{}}
	return n, n.refresh(ctx)
}

// namesOf is newNames from the answers already at hand; it never asks the
// node again.
func namesOf(me *appv1.NodeResponse, cts []*appv1.Contact) *names {
	n := &names{tried: map[string]bool{}}
	n.set(me, cts)
	return n
}

func (n *names) refresh(ctx context.Context) error {
	me, err := n.client.Node(ctx, &appv1.NodeRequest{})
	if err != nil {
		return err
	}
	cts, err := n.client.Contacts(ctx, &appv1.ContactsRequest{})
	if err != nil {
		return err
	}
	n.set(me, cts.GetContacts())
	return nil
}

func (n *names) set(me *appv1.NodeResponse, cts []*appv1.Contact) {
	n.self, n.selfName = me.GetIdentity(), me.GetName()
	n.shown = map[string]string{string(n.self): n.selfName}
	n.count = map[string]int{foldName(n.selfName): 1}
	for _, c := range cts {
		name := c.GetAlias()
		if name == "" {
			name = c.GetName()
		}
		n.shown[string(c.GetIdentity())] = name
		n.count[foldName(name)]++
	}
}

// foldName is the form in which two names count as the same: lower case,
// runs of white space as one space, none at the ends.
func foldName(s string) string {
	return strings.Join(strings.Fields(strings.ToLower(s)), " ")
}

// show returns how to print the identity id that the node calls name
// (Message.author_name: "" for a sender that is not a contact). An
// identity or name that the last look at the node's contacts did not have
// makes it look again, once, so that a contact added since counts.
func (n *names) show(ctx context.Context, id []byte, name string) string {
	if name == "" {
		if len(id) == 0 {
			return "unknown sender"
		}
		return "unknown sender (" + identity.Fingerprint(id) + ")"
	}
	if n.client != nil && n.shown[string(id)] != name && !n.tried[string(id)+"\x00"+name] {
		n.tried[string(id)+"\x00"+name] = true
		_ = n.refresh(ctx) // on failure, the names already known serve
	}
	shown := escapeText(name)
	if n.count[foldName(name)] > 1 && len(id) > 0 {
		shown += " (" + identity.Fingerprint(id) + ")"
	}
	return shown
}

// member returns how to print a conversation member: this node, a contact,
// or the fingerprint of an identity that is neither.
func (n *names) member(ctx context.Context, id []byte) string {
	if bytes.Equal(id, n.self) {
		return n.show(ctx, id, n.selfName) + " (this node)"
	}
	if name, ok := n.shown[string(id)]; ok {
		return n.show(ctx, id, name)
	}
	return identity.Fingerprint(id)
}
