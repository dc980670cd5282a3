package mixnet

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/strata-msg/strata/core/sdk"
	"github.com/strata-msg/strata/plugins/mixnet/loopix"
	"github.com/strata-msg/strata/plugins/mixnet/pki"
	"github.com/strata-msg/strata/plugins/mixnet/sphinx"
)

// Roles a node runs, the value of the role key.
const (
	RoleClient   = "client"
	RoleMix      = "mix"
	RoleProvider = "provider"
)

// Config is the layer's config section; its tags are the schema. Rates
// left unset take the values the PKI document publishes, which is what
// every node of a network should do: a client whose rates differ from the
// others' stands out. docs/plugins/mixnet.md gives each key's trade-off.
type Config struct {
	Role    string `json:"role" default:"client" enum:"client,mix,provider" desc:"what this node is: a client (sends and receives through its provider), a mix (one node of a mix layer) or a provider (its clients' entry, exit and mailboxes)"`
	Overlay string `json:"overlay" default:"libp2p" enum:"libp2p,devp2p" desc:"the overlay below, whose peer ids (from the PKI descriptors) the next hops are reached by"`

	PKIDocument        string        `json:"pki_document" required:"true" desc:"path of the signed PKI document (pki.SignedDocument encoding); read again at every epoch"`
	NetworkID          string        `json:"network_id" required:"true" desc:"the network's id, which the document must carry"`
	Authorities        []string      `json:"authorities" required:"true" desc:"hex Ed25519 public keys of the PKI authorities"`
	AuthorityThreshold int64         `json:"authority_threshold" default:"1" min:"1" max:"64" desc:"how many of the authorities must have signed the document"`
	EpochPeriod        time.Duration `json:"epoch_period" default:"20m" min:"1s" max:"24h" desc:"length of an epoch; every node of the network must agree"`
	GenesisUnix        int64         `json:"genesis_unix" default:"1496275200" min:"0" max:"4102444800" desc:"start of epoch 0, Unix seconds; every node of the network must agree"`
	Layers             int64         `json:"layers" default:"3" min:"1" max:"16" desc:"mix layers of the network (the Sphinx paths have layers+2 hops)"`
	UserPayload        int64         `json:"user_payload" default:"2000" min:"512" max:"65536" desc:"user payload bytes of one Sphinx packet; every node of the network must agree"`

	Provider string `json:"provider" desc:"client: the name of its provider in the PKI document"`
	Name     string `json:"name" desc:"mix, provider: this node's name in the PKI document"`
	KeysPath string `json:"keys_path" desc:"mix, provider: file holding the Sphinx key chain secret and start epoch (written by the testnet generator); read once, then the chain is kept in the data directory"`

	LambdaP *float64 `json:"lambda_p" min:"0.001" max:"1000" desc:"client payload stream, packets per second (real if one is queued, else drop cover); default: the document's"`
	LambdaL *float64 `json:"lambda_l" min:"0" max:"1000" desc:"client loop cover, packets per second (0: off); default: the document's"`
	LambdaD *float64 `json:"lambda_d" min:"0" max:"1000" desc:"client drop cover, packets per second (0: off); default: the document's"`
	LambdaM *float64 `json:"lambda_m" min:"0" max:"1000" desc:"relay loop cover, packets per second (0: off); default: the document's"`
	Mu      *float64 `json:"mu" min:"0.01" max:"100000" desc:"rate of the per-hop exponential delays a client draws (mean delay 1/mu s); default: the document's"`

	PullInterval       time.Duration `json:"pull_interval" default:"5s" min:"10ms" max:"1h" desc:"client: time between two pulls of its mailbox"`
	PullBatch          int64         `json:"pull_batch" default:"16" min:"1" max:"1024" desc:"provider: mailbox frames every pull is answered with (real entries, then dummies)"`
	MaxSendQueue       int64         `json:"max_send_queue" default:"1024" min:"1" max:"1048576" desc:"client: fragments waiting for a payload slot; a message that does not fit is dropped"`
	MaxMessageSize     int64         `json:"max_message_size" default:"262144" min:"1024" max:"16777216" desc:"client: largest message (payload, conversation and sender address), sent or reassembled"`
	MaxPending         int64         `json:"max_pending_messages" default:"64" min:"1" max:"65536" desc:"client: messages being reassembled at once (the oldest is dropped beyond)"`
	ReassemblyTimeout  time.Duration `json:"reassembly_timeout" default:"10m" min:"1s" max:"24h" desc:"client: how long a partly received message is kept"`
	AckTimeout         time.Duration `json:"ack_timeout" default:"1m" min:"100ms" max:"24h" desc:"client: how long a sent fragment waits for the recipient's SURB acknowledgement before it is sent again"`
	MaxRetransmissions int64         `json:"max_retransmissions" default:"3" min:"0" max:"100" desc:"client: how many times an unacknowledged fragment is sent again before it is given up (the sync layer above still retransmits the message)"`
	ReplySURBs         int64         `json:"reply_surbs" default:"0" min:"0" max:"16" desc:"client: reply SURBs every message carries, through which its recipient can reply without learning this client's address (each one reply packet); 0: none"`
	Anonymous          bool          `json:"anonymous" default:"false" desc:"client: leave this client's address out of its messages (the recipient sees only a reply address, good while it holds reply SURBs: set reply_surbs)"`

	MaxQueue           int64         `json:"max_queue" default:"20000" min:"1" max:"100000000" desc:"mix, provider: packets held for their delay at once"`
	MaxDelay           time.Duration `json:"max_delay" default:"1m" min:"1ms" max:"24h" desc:"mix, provider: longest per-hop delay accepted"`
	MaxLateness        time.Duration `json:"max_lateness" default:"10s" min:"0s" max:"24h" desc:"mix, provider: a packet sent more than this after its due time is dropped instead (the relay could not keep up); 0 never drops"`
	ClientRate         *float64      `json:"client_rate" min:"0.001" max:"1000000" desc:"provider: packets per second one client may inject; default: 4 × (λP + λL + λD)"`
	ClientBurst        int64         `json:"client_burst" default:"50" min:"1" max:"1000000" desc:"provider: packets a client may inject at once before client_rate applies"`
	MaxClients         int64         `json:"max_clients" default:"10000" min:"1" max:"10000000" desc:"provider: registered mailboxes"`
	MailboxMaxEntries  int64         `json:"mailbox_max_entries" default:"1000" min:"1" max:"10000000" desc:"provider: entries one mailbox holds; more are dropped"`
	MailboxMaxBytes    int64         `json:"mailbox_max_bytes" default:"8388608" min:"4096" max:"1099511627776" desc:"provider: bytes one mailbox holds; more are dropped"`
	SharedMaxMailboxes int64         `json:"shared_max_mailboxes" default:"1000" min:"0" max:"10000000" desc:"provider: shared mailboxes (public chats) it holds; 0: none (posts and pulls for them are dropped)"`
	SharedMaxEntries   int64         `json:"shared_max_entries" default:"1000" min:"1" max:"10000000" desc:"provider: entries one shared mailbox keeps; a post past it drops the oldest"`
	SharedRetention    time.Duration `json:"shared_retention" default:"24h" min:"1s" max:"8760h" desc:"provider: how long a shared mailbox keeps an entry (a reader that joins later reads what is younger)"`
	SharedPullRate     float64       `json:"shared_pull_rate" default:"20" min:"0.001" max:"1000000" desc:"provider: pulls per second one shared mailbox is answered (its readers are anonymous: the bound is per mailbox); more are dropped"`
	SharedPullBurst    int64         `json:"shared_pull_burst" default:"100" min:"1" max:"1000000" desc:"provider: pulls of one shared mailbox answered at once before shared_pull_rate applies"`
	ReplayExpected     int64         `json:"replay_expected_tags" default:"2000000" min:"1000" max:"1000000000" desc:"mix, provider: packets per epoch the replay filter is sized for (past it, false drops rise)"`
	Durability         string        `json:"durability" default:"full" enum:"full,normal" desc:"mailboxes and replay tags: full fsyncs every write (survives power loss), normal survives a killed process"`
}

// Validate checks what the tags cannot; sdk.LoadConfig calls it.
func (c Config) Validate() error {
	switch c.Role {
	case RoleClient:
		if c.Provider == "" {
			return &sdk.ConfigError{Key: "provider", Problem: "is empty", Fix: "a client needs the name of its provider in the PKI document"}
		}
	default:
		if c.Name == "" {
			return &sdk.ConfigError{Key: "name", Problem: "is empty", Fix: fmt.Sprintf("a %s needs its own name in the PKI document", c.Role)}
		}
		if c.KeysPath == "" {
			return &sdk.ConfigError{Key: "keys_path", Problem: "is empty", Fix: fmt.Sprintf("a %s needs the file of its Sphinx key chain secret", c.Role)}
		}
	}
	if _, err := c.authorities(); err != nil {
		return err
	}
	if int(c.AuthorityThreshold) > len(c.Authorities) {
		return &sdk.ConfigError{Key: "authority_threshold", Problem: fmt.Sprintf("%d is more than the %d authorities", c.AuthorityThreshold, len(c.Authorities)), Fix: "lower it or list more authorities"}
	}
	if c.EpochPeriod%time.Second != 0 {
		return &sdk.ConfigError{Key: "epoch_period", Problem: fmt.Sprintf("is %v", c.EpochPeriod), Fix: "use whole seconds"}
	}
	if _, err := c.geometry(); err != nil {
		return &sdk.ConfigError{Key: "user_payload", Problem: err.Error(), Fix: "use the network's geometry"}
	}
	if c.MaxDelay < time.Millisecond {
		return &sdk.ConfigError{Key: "max_delay", Problem: "under 1ms", Fix: "allow at least the delays clients draw"}
	}
	return nil
}

func (c Config) authorities() ([]ed25519.PublicKey, error) {
	if len(c.Authorities) == 0 {
		return nil, &sdk.ConfigError{Key: "authorities", Problem: "is empty", Fix: "list the hex Ed25519 public keys of the network's PKI authorities"}
	}
	var out []ed25519.PublicKey
	for i, a := range c.Authorities {
		b, err := hex.DecodeString(a)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, &sdk.ConfigError{Key: fmt.Sprintf("authorities[%d]", i), Problem: fmt.Sprintf("%q is not a hex Ed25519 public key", a), Fix: "write the 32-byte key as 64 hex digits"}
		}
		out = append(out, b)
	}
	return out, nil
}

func (c Config) geometry() (*sphinx.Geometry, error) {
	return sphinx.NewGeometry(int(c.UserPayload), int(c.Layers)+2, true)
}

func (c Config) epochs() (*pki.Epochs, error) {
	return pki.NewEpochs(c.EpochPeriod, time.Unix(c.GenesisUnix, 0), nil)
}

// rates returns the document's rates with the configured ones over them.
func (c Config) rates(p *pki.Params) loopix.Rates {
	r := loopix.RatesOf(p)
	for _, o := range []struct {
		v   *float64
		dst *float64
	}{{c.LambdaP, &r.LambdaP}, {c.LambdaL, &r.LambdaL}, {c.LambdaD, &r.LambdaD}, {c.LambdaM, &r.LambdaM}, {c.Mu, &r.Mu}} {
		if o.v != nil {
			*o.dst = *o.v
		}
	}
	return r
}

// clientRate is the provider's per-client packet rate.
func (c Config) clientRate(r loopix.Rates) float64 {
	if c.ClientRate != nil {
		return *c.ClientRate
	}
	return 4 * (r.LambdaP + r.LambdaL + r.LambdaD)
}
