package node

import (
	"fmt"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	"github.com/strata-msg/strata/core/pipeline"
	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/host/contacts"
	"github.com/strata-msg/strata/host/faults"
)

// buildRouter builds the stack's routing core once: the stages the
// adapters add (address translation and public chats at the privacy
// layer's upper boundary), then fault injection, on every boundary and
// direction; the top boundary's UP frames go to the history.
func (n *Node) buildRouter() error {
	names := make([]string, len(n.slots))
	var stages []pipeline.Stage
	for i, s := range n.slots {
		names[i] = s.key
		if st, ok := s.adapter.(stager); ok {
			stages = append(stages, st.stage())
		}
	}
	n.faults = map[int][]*faults.Injector{}
	stages = append(stages, n.faultStage())
	r, err := pipeline.New(pipeline.Config{
		Layers:       names,
		Stages:       stages,
		App:          pipeline.AppFunc(n.deliverTop),
		StallTimeout: n.opts.StallTimeout,
		Tap:          n.opts.Tap,
		Check: func(i int, f *commonv1.Frame) string {
			if c, ok := n.slots[i].adapter.(contractChecker); ok {
				return c.check(f)
			}
			return ""
		},
		Consume: n.consumeEvent,
		Warn: func(i int, problem string, f *commonv1.Frame) {
			s := n.slots[i]
			s.log.Warn("the layer emitted a frame that breaks its contract; the stack may deliver nothing (reported once per problem)",
				"plugin", s.layer.Plugin, "problem", problem, "frame", describeFrame(f))
		},
	})
	if err != nil {
		return err
	}
	n.router = r
	return nil
}

// describeFrame is a frame's routing header, for logs (never its payload).
func describeFrame(f *commonv1.Frame) string {
	return fmt.Sprintf("direction=%s trace=%d conversation=%x peer=%x protocol=%q message_id=%x payload=%dB",
		f.GetDirection(), f.GetTraceId(), f.GetConversation(), f.GetPeer(), f.GetProtocol(), f.GetMessageId(), len(f.GetPayload()))
}

// readPeers reads node.peers: relays and bootstrap nodes, each a card with
// an address for this node's overlay.
func (n *Node) readPeers() error {
	p2p, ps := adapterOf[*p2pAdapter](n)
	for i, text := range n.cfg.Node.Peers {
		c, err := contacts.DecodeText(text)
		if err != nil {
			return &sdk.ConfigError{Key: fmt.Sprintf("node.peers[%d]", i), Problem: fmt.Sprintf("is not a contact card: %v", err), Fix: "paste the peer's card as `strata card` or its API prints it (strata:card:...)"}
		}
		if p2p == nil {
			continue
		}
		if _, ok := p2p.cardSection(c); !ok {
			return &sdk.ConfigError{Key: fmt.Sprintf("node.peers[%d]", i), Problem: fmt.Sprintf("card of %q has no address for the %s overlay", c.Name, ps.layer.Plugin), Fix: "use the card of a node that runs the same p2p plugin"}
		}
		n.peers = append(n.peers, c)
	}
	return nil
}
