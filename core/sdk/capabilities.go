package sdk

// Capability words name what a layer provides to the layer above
// (PluginInfo.provides) and what it requires from the layer below
// (PluginInfo.requires). The host composes a stack only when every
// requirement of a layer is among what the layer below provides. They are
// plain strings on the wire, so a third-party layer may define its own; the
// ones below are those the stock layers speak, listed with their meaning in
// docs/writing-a-plugin.md.
const (
	// CapUnicast: a DOWN frame with a peer reaches that one peer (p2p).
	CapUnicast = "unicast"
	// CapBroadcast: a DOWN frame without a peer goes to every subscriber
	// of the topic named by Frame.protocol (p2p).
	CapBroadcast = "broadcast"
	// CapNamedProtocols: the overlay carries the named protocols the layers
	// above declare in their ConfigureResponse (p2p).
	CapNamedProtocols = "named-protocols"
	// CapPeerEvents: the layer emits a PeerEvent when an overlay peer
	// connects or disconnects (p2p).
	CapPeerEvents = "peer-events"
	// CapFlood: a frame may be sent to every connected peer at once (p2p).
	CapFlood = "flood"

	// CapDirect: a DOWN frame addressed to a privacy address reaches the
	// node that published it, and an UP frame names its sender's privacy
	// address (privacy).
	CapDirect = "direct"
	// CapShared: the layer has shared addresses that anyone who knows a
	// name can subscribe to, for public chats (privacy).
	CapShared = "shared"
	// CapRelayed: messages reach their recipients through relay nodes of
	// this layer (a whisper forwarding node, a mix node), so a network of
	// clients on it needs relays; `strata testnet` and `strata compare`
	// start them (privacy).
	CapRelayed = "relayed"
	// CapWhisper: the layer speaks Whisper v6 on the wire (privacy).
	CapWhisper = "whisper"

	// CapE2E: frames are sealed end to end for a conversation's members,
	// and an UP frame names its authenticated sender's identity (secure).
	CapE2E = "e2e"
	// CapForwardSecrecy: keys of past messages are not recoverable from
	// the current state (secure).
	CapForwardSecrecy = "forward-secrecy"
	// CapPostCompromiseSecurity: a session heals after a state compromise
	// (secure).
	CapPostCompromiseSecurity = "post-compromise-security"
	// CapLearnsConversations: given a conversation of three or more by
	// any one member's host (SetConversation), the layer makes its group
	// reach every member, and the members whose hosts did not know it
	// learn it from the layer's own traffic (a common.v1
	// ConversationLearned event, as an MLS Welcome, or an MLS group ask to
	// the member that makes the group, gives) before any frame of it goes
	// up; a frame for the conversation is sealed once for all its members.
	// So the host announces such a conversation only once, in the
	// conversation itself (for its name), instead of in every member's 1:1
	// conversation (secure).
	CapLearnsConversations = "learns-conversations"

	// CapSync: messages are stored, retransmitted and delivered once
	// (sync).
	CapSync = "sync"
	// CapCausal: a message is delivered only after its parents (sync).
	CapCausal = "causal"
)
