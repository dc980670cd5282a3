// Command refnode runs a go-ethereum v1.9.20 whisper v6 (shh/6) node on a
// devp2p server and is driven by newline-delimited JSON on stdin. Answers and
// events go to stdout, logs to stderr. See ../../README.md for the protocol.
//
// For the benchmarks of plugins/whisper (docs/performance.md) there are also
// the flags -sniff-messages=false (code-1 packets are left to geth, not read
// by the sniffing wrapper) and -cpuprofile FILE, and the commands seal_bench
// (time geth's Envelope.Seal on given envelopes) and rusage (the process's
// CPU time).
package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/log"
	"github.com/ethereum/go-ethereum/p2p"
	"github.com/ethereum/go-ethereum/p2p/enode"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/ethereum/go-ethereum/whisper/whisperv6"
)

// ---- output ----

type output struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// jsonFloat is f, or nil (JSON null) when f is not finite: JSON has no
// +Inf, which is geth's PoW of a TTL-0 envelope that expires this second,
// and encoding/json refuses to write it (the whole line would be lost).
func jsonFloat(f float64) interface{} {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil
	}
	return f
}

func (o *output) send(v interface{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.enc.Encode(v); err != nil {
		log.Error("stdout write failed", "err", err)
	}
}

// ---- per-peer state, observed by sniffing the shh/6 stream ----

type peerState struct {
	id         enode.ID
	rw         p2p.MsgReadWriter
	mu         sync.Mutex
	status     bool
	version    uint64
	pow        float64
	bloom      []byte
	light      bool
	packetsIn  map[uint64]int
	envelopes  int
	connected  time.Time
	remoteAddr string
	name       string
}

type sniffRW struct {
	p2p.MsgReadWriter
	st *peerState
	n  *node
}

func (s *sniffRW) ReadMsg() (p2p.Msg, error) {
	msg, err := s.MsgReadWriter.ReadMsg()
	if err != nil {
		return msg, err
	}
	s.st.mu.Lock()
	s.st.packetsIn[msg.Code]++
	s.st.mu.Unlock()
	if msg.Code > 3 || msg.Size > 16<<20 || (msg.Code == 1 && !s.n.sniffMessages) {
		return msg, nil
	}
	payload, rerr := io.ReadAll(msg.Payload)
	if rerr != nil {
		return msg, rerr
	}
	msg.Payload = bytes.NewReader(payload)
	s.observe(msg.Code, payload)
	return msg, nil
}

func (s *sniffRW) observe(code uint64, payload []byte) {
	st := s.st
	switch code {
	case 0:
		str := rlp.NewStream(bytes.NewReader(payload), uint64(len(payload)))
		if _, err := str.List(); err != nil {
			return
		}
		v, err := str.Uint()
		if err != nil {
			return
		}
		st.mu.Lock()
		st.status, st.version = true, v
		if bits, err := str.Uint(); err == nil {
			st.pow = math.Float64frombits(bits)
			if b, err := str.Bytes(); err == nil {
				st.bloom = b
			}
		}
		if l, err := str.Bool(); err == nil {
			st.light = l
		}
		st.mu.Unlock()
		s.n.out.send(map[string]interface{}{"event": "peer", "type": "whisper_status", "peer": st.id.String(), "pow": st.pow, "bloom": hex.EncodeToString(st.bloom)})
	case 1:
		var envs []rlp.RawValue
		if rlp.DecodeBytes(payload, &envs) == nil {
			st.mu.Lock()
			st.envelopes += len(envs)
			st.mu.Unlock()
		}
	case 2:
		var bits uint64
		if rlp.DecodeBytes(payload, &bits) == nil {
			st.mu.Lock()
			st.pow = math.Float64frombits(bits)
			st.mu.Unlock()
		}
	case 3:
		var b []byte
		if rlp.DecodeBytes(payload, &b) == nil {
			st.mu.Lock()
			st.bloom = b
			st.mu.Unlock()
		}
	}
}

// ---- node ----

type subscription struct {
	id     string
	filter *whisperv6.Filter
}

type node struct {
	out       *output
	srv       *p2p.Server
	w         *whisperv6.Whisper
	key       *ecdsa.PrivateKey
	mu        sync.Mutex
	pst       map[enode.ID]*peerState
	subs      map[string]*subscription
	delivered int
	// sniffMessages: read and count the envelopes of code-1 packets
	// (peers' envelopes_received). Off (-sniff-messages=false) for
	// benchmarks, so that geth reads its packets as it does alone.
	sniffMessages bool
}

func (n *node) wrapProtocols(protos []p2p.Protocol) []p2p.Protocol {
	out := make([]p2p.Protocol, len(protos))
	for i, p := range protos {
		run := p.Run
		p.Run = func(peer *p2p.Peer, rw p2p.MsgReadWriter) error {
			st := &peerState{id: peer.ID(), rw: rw, packetsIn: map[uint64]int{}, connected: time.Now(), remoteAddr: peer.RemoteAddr().String(), name: peer.Name()}
			n.mu.Lock()
			n.pst[st.id] = st
			n.mu.Unlock()
			err := run(peer, &sniffRW{MsgReadWriter: rw, st: st, n: n})
			n.mu.Lock()
			if n.pst[st.id] == st {
				delete(n.pst, st.id)
			}
			n.mu.Unlock()
			return err
		}
		out[i] = p
	}
	return out
}

func (n *node) pollFilters() {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for range t.C {
		n.mu.Lock()
		subs := make([]*subscription, 0, len(n.subs))
		for _, s := range n.subs {
			subs = append(subs, s)
		}
		n.mu.Unlock()
		for _, s := range subs {
			msgs := s.filter.Retrieve()
			sort.Slice(msgs, func(i, j int) bool { return msgs[i].Sent < msgs[j].Sent })
			for _, m := range msgs {
				ev := map[string]interface{}{
					"event":      "message",
					"filter":     s.id,
					"payload":    hex.EncodeToString(m.Payload),
					"padding":    hex.EncodeToString(m.Padding),
					"topic":      hex.EncodeToString(m.Topic[:]),
					"signer_pub": "",
					"pow":        jsonFloat(m.PoW),
					"hash":       hex.EncodeToString(m.EnvelopeHash.Bytes()),
					"sent":       m.Sent,
					"ttl":        m.TTL,
				}
				if m.Src != nil {
					ev["signer_pub"] = hex.EncodeToString(crypto.FromECDSAPub(m.Src))
				}
				if m.Dst != nil {
					ev["recipient_pub"] = hex.EncodeToString(crypto.FromECDSAPub(m.Dst))
				}
				n.mu.Lock()
				n.delivered++
				n.mu.Unlock()
				n.out.send(ev)
			}
		}
	}
}

func (n *node) peerEvents() {
	ch := make(chan *p2p.PeerEvent, 64)
	n.srv.SubscribeEvents(ch)
	for ev := range ch {
		if ev.Type != p2p.PeerEventTypeAdd && ev.Type != p2p.PeerEventTypeDrop {
			continue
		}
		m := map[string]interface{}{"event": "peer", "type": string(ev.Type), "peer": ev.Peer.String()}
		if ev.Error != "" {
			m["error"] = ev.Error
		}
		if ev.RemoteAddress != "" {
			m["remote"] = ev.RemoteAddress
		}
		n.out.send(m)
	}
}

// ---- commands ----

type request struct {
	ID  *int64          `json:"id"`
	Cmd string          `json:"cmd"`
	Raw json.RawMessage `json:"-"`
}

type args struct {
	Enode         string   `json:"enode"`
	Pow           *float64 `json:"pow"`
	NoTolerance   bool     `json:"no_tolerance"`
	Bloom         string   `json:"bloom"`
	Password      *string  `json:"password"`
	Key           string   `json:"key"`
	PrivateKey    string   `json:"private_key"`
	Topics        []string `json:"topics"`
	SymKeyID      string   `json:"sym_key_id"`
	PrivateKeyID  string   `json:"private_key_id"`
	MinPow        float64  `json:"min_pow"`
	AllowP2P      bool     `json:"allow_p2p"`
	FilterID      string   `json:"filter"`
	Topic         string   `json:"topic"`
	Payload       string   `json:"payload"`
	Padding       *string  `json:"padding"`
	PubKey        string   `json:"pub_key"`
	SignWithKeyID string   `json:"sign_with_key_id"`
	TTL           uint32   `json:"ttl"`
	PowTarget     *float64 `json:"pow_target"`
	PowTime       uint32   `json:"pow_time"`
	Direct        bool     `json:"direct"`
	EnvelopeRLP   string   `json:"envelope_rlp"`
	EnvelopesRLP  []string `json:"envelopes_rlp"`
	To            string   `json:"to"`
	Peer          string   `json:"peer"`
}

func unhex(s string) ([]byte, error) {
	return hex.DecodeString(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"))
}

func (n *node) handle(cmd string, a *args) (map[string]interface{}, error) {
	switch cmd {
	case "info":
		self := n.srv.Self()
		return map[string]interface{}{
			"enode":     self.URLv4(),
			"node_id":   self.ID().String(),
			"pub_key":   hex.EncodeToString(crypto.FromECDSAPub(&n.key.PublicKey)),
			"listen":    n.srv.ListenAddr,
			"min_pow":   n.w.MinPow(),
			"bloom":     hex.EncodeToString(n.w.BloomFilter()),
			"max_size":  n.w.MaxMessageSize(),
			"protocols": []string{"shh/6"},
		}, nil
	case "add_peer", "remove_peer":
		nd, err := enode.ParseV4(a.Enode)
		if err != nil {
			return nil, fmt.Errorf("bad enode: %v", err)
		}
		if cmd == "add_peer" {
			n.srv.AddPeer(nd)
		} else {
			n.srv.RemovePeer(nd)
		}
		return map[string]interface{}{}, nil
	case "peers":
		n.mu.Lock()
		sts := make(map[enode.ID]*peerState, len(n.pst))
		for k, v := range n.pst {
			sts[k] = v
		}
		n.mu.Unlock()
		list := []map[string]interface{}{}
		for _, p := range n.srv.Peers() {
			e := map[string]interface{}{"id": p.ID().String(), "name": p.Name(), "remote": p.RemoteAddr().String(), "caps": capStrings(p.Caps()), "whisper": false}
			if st := sts[p.ID()]; st != nil {
				st.mu.Lock()
				e["whisper"] = st.status
				e["pow"] = st.pow
				e["bloom"] = hex.EncodeToString(st.bloom)
				e["light"] = st.light
				e["envelopes_received"] = st.envelopes
				pk := map[string]int{}
				for c, k := range st.packetsIn {
					pk[fmt.Sprint(c)] = k
				}
				e["packets_received"] = pk
				st.mu.Unlock()
			}
			list = append(list, e)
		}
		return map[string]interface{}{"peers": list}, nil
	case "set_min_pow":
		if a.Pow == nil {
			return nil, errors.New("pow required")
		}
		if a.NoTolerance {
			n.w.SetMinimumPowTest(*a.Pow)
			return map[string]interface{}{}, nil
		}
		return map[string]interface{}{}, n.w.SetMinimumPoW(*a.Pow)
	case "set_bloom":
		b, err := unhex(a.Bloom)
		if err != nil {
			return nil, err
		}
		return map[string]interface{}{}, n.w.SetBloomFilter(b)
	case "new_sym_key":
		var id string
		var err error
		if a.Password != nil {
			id, err = n.w.AddSymKeyFromPassword(*a.Password)
		} else {
			id, err = n.w.GenerateSymKey()
		}
		if err != nil {
			return nil, err
		}
		k, _ := n.w.GetSymKey(id)
		return map[string]interface{}{"key_id": id, "key": hex.EncodeToString(k)}, nil
	case "add_sym_key":
		k, err := unhex(a.Key)
		if err != nil {
			return nil, err
		}
		id, err := n.w.AddSymKeyDirect(k)
		if err != nil {
			return nil, err
		}
		return map[string]interface{}{"key_id": id}, nil
	case "new_key_pair", "add_private_key":
		var id string
		var err error
		if cmd == "new_key_pair" {
			id, err = n.w.NewKeyPair()
		} else {
			var k *ecdsa.PrivateKey
			hx := a.Key
			if hx == "" {
				hx = a.PrivateKey
			}
			kb, herr := unhex(hx)
			if herr != nil {
				return nil, herr
			}
			if k, err = crypto.ToECDSA(kb); err != nil {
				return nil, err
			}
			id, err = n.w.AddKeyPair(k)
		}
		if err != nil {
			return nil, err
		}
		k, err := n.w.GetPrivateKey(id)
		if err != nil {
			return nil, err
		}
		return map[string]interface{}{"key_id": id, "pub_key": hex.EncodeToString(crypto.FromECDSAPub(&k.PublicKey))}, nil
	case "subscribe":
		f := &whisperv6.Filter{PoW: a.MinPow, AllowP2P: a.AllowP2P}
		for _, t := range a.Topics {
			b, err := unhex(t)
			if err != nil || len(b) != whisperv6.TopicLength {
				return nil, fmt.Errorf("bad topic %q", t)
			}
			f.Topics = append(f.Topics, b)
		}
		switch {
		case a.SymKeyID != "" && a.PrivateKeyID != "":
			return nil, errors.New("give sym_key_id or private_key_id, not both")
		case a.SymKeyID != "":
			k, err := n.w.GetSymKey(a.SymKeyID)
			if err != nil {
				return nil, err
			}
			f.KeySym = k
		case a.PrivateKeyID != "":
			k, err := n.w.GetPrivateKey(a.PrivateKeyID)
			if err != nil {
				return nil, err
			}
			f.KeyAsym = k
		default:
			return nil, errors.New("sym_key_id or private_key_id required")
		}
		id, err := n.w.Subscribe(f)
		if err != nil {
			return nil, err
		}
		n.mu.Lock()
		n.subs[id] = &subscription{id: id, filter: f}
		n.mu.Unlock()
		return map[string]interface{}{"filter": id}, nil
	case "unsubscribe":
		n.mu.Lock()
		delete(n.subs, a.FilterID)
		n.mu.Unlock()
		return map[string]interface{}{}, n.w.Unsubscribe(a.FilterID)
	case "post":
		return n.post(a)
	case "post_raw":
		raw, err := unhex(a.EnvelopeRLP)
		if err != nil {
			return nil, err
		}
		return n.postRaw(raw, a.To, a.Peer)
	case "stats":
		return n.stats(), nil
	case "seal_bench":
		return sealBench(a)
	case "rusage":
		// CPU time used by the whole process so far (for benchmarks).
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return nil, err
		}
		return map[string]interface{}{"user_ns": ru.Utime.Nano(), "sys_ns": ru.Stime.Nano()}, nil
	}
	return nil, fmt.Errorf("unknown command %q", cmd)
}

func capStrings(cs []p2p.Cap) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.String()
	}
	return out
}

func (n *node) post(a *args) (map[string]interface{}, error) {
	tb, err := unhex(a.Topic)
	if err != nil || len(tb) != whisperv6.TopicLength {
		return nil, fmt.Errorf("bad topic %q", a.Topic)
	}
	payload, err := unhex(a.Payload)
	if err != nil {
		return nil, err
	}
	p := &whisperv6.MessageParams{TTL: a.TTL, Topic: whisperv6.BytesToTopic(tb), Payload: payload, PoW: whisperv6.DefaultMinimumPoW, WorkTime: 5}
	if p.TTL == 0 {
		p.TTL = whisperv6.DefaultTTL
	}
	if a.PowTarget != nil {
		p.PoW = *a.PowTarget
	}
	if a.PowTime != 0 {
		p.WorkTime = a.PowTime
	}
	if a.Padding != nil {
		if p.Padding, err = unhex(*a.Padding); err != nil {
			return nil, err
		}
	}
	switch {
	case a.SymKeyID != "" && a.PubKey != "":
		return nil, errors.New("give sym_key_id or pub_key, not both")
	case a.SymKeyID != "":
		if p.KeySym, err = n.w.GetSymKey(a.SymKeyID); err != nil {
			return nil, err
		}
	case a.PubKey != "":
		kb, err := unhex(a.PubKey)
		if err != nil {
			return nil, err
		}
		if p.Dst, err = crypto.UnmarshalPubkey(kb); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("sym_key_id or pub_key required")
	}
	if a.SignWithKeyID != "" {
		if p.Src, err = n.w.GetPrivateKey(a.SignWithKeyID); err != nil {
			return nil, err
		}
	}
	m, err := whisperv6.NewSentMessage(p)
	if err != nil {
		return nil, err
	}
	env, err := m.Wrap(p)
	if err != nil {
		return nil, err
	}
	raw, err := rlp.EncodeToBytes(env)
	if err != nil {
		return nil, err
	}
	res := map[string]interface{}{"hash": hex.EncodeToString(env.Hash().Bytes()), "envelope_rlp": hex.EncodeToString(raw), "pow": jsonFloat(env.PoW())}
	if a.Direct {
		r, err := n.postRaw(raw, "peers", "")
		if err != nil {
			return nil, err
		}
		res["sent_to"] = r["sent_to"]
		return res, nil
	}
	if err := n.w.Send(env); err != nil {
		return nil, err
	}
	return res, nil
}

// postRaw either hands the envelope to the local node as if received
// (to="local": geth's add() checks apply and the error is returned), or
// writes it verbatim in a code-1 packet to whisper peers (to="peers", the
// default; peer restricts it to one node id), bypassing all local checks.
func (n *node) postRaw(raw []byte, to, peer string) (map[string]interface{}, error) {
	if to == "local" {
		var env whisperv6.Envelope
		if err := rlp.DecodeBytes(raw, &env); err != nil {
			return nil, fmt.Errorf("decode envelope: %v", err)
		}
		if err := n.w.Send(&env); err != nil {
			return nil, err
		}
		return map[string]interface{}{"hash": hex.EncodeToString(env.Hash().Bytes()), "pow": jsonFloat(env.PoW())}, nil
	}
	if to != "" && to != "peers" {
		return nil, fmt.Errorf("bad to %q (local|peers)", to)
	}
	n.mu.Lock()
	var targets []*peerState
	for _, st := range n.pst {
		if peer == "" || st.id.String() == peer {
			targets = append(targets, st)
		}
	}
	n.mu.Unlock()
	sent := []string{}
	var lastErr error
	for _, st := range targets {
		st.mu.Lock()
		ready := st.status
		st.mu.Unlock()
		if !ready {
			continue
		}
		if err := p2p.Send(st.rw, 1, []rlp.RawValue{raw}); err != nil {
			lastErr = err
			continue
		}
		sent = append(sent, st.id.String())
	}
	if len(sent) == 0 {
		if lastErr != nil {
			return nil, lastErr
		}
		return nil, errors.New("no whisper peer to send to")
	}
	return map[string]interface{}{"hash": hex.EncodeToString(crypto.Keccak256(raw)), "sent_to": sent}, nil
}

// sealBench times geth's Envelope.Seal on each of the given envelopes (RLP,
// nonce ignored) at PoW target pow with WorkTime pow_time (default 60 s),
// one after the other on one goroutine, as geth seals a posted message.
// Only Seal is timed, not the decoding. It answers the time of each seal
// (ns), their sum (total_ns), the nonces found, the PoW reached and the
// leading-zero bits geth aimed at (its powToFirstBit).
func sealBench(a *args) (map[string]interface{}, error) {
	if a.Pow == nil || *a.Pow <= 0 {
		return nil, errors.New("pow > 0 required")
	}
	workTime := a.PowTime
	if workTime == 0 {
		workTime = 60
	}
	envs := make([]*whisperv6.Envelope, len(a.EnvelopesRLP))
	for i, h := range a.EnvelopesRLP {
		raw, err := unhex(h)
		if err != nil {
			return nil, fmt.Errorf("envelope %d: %v", i, err)
		}
		envs[i] = new(whisperv6.Envelope)
		if err := rlp.DecodeBytes(raw, envs[i]); err != nil {
			return nil, fmt.Errorf("envelope %d: %v", i, err)
		}
	}
	params := &whisperv6.MessageParams{PoW: *a.Pow, WorkTime: workTime}
	ns := make([]int64, len(envs))
	nonces := make([]uint64, len(envs))
	pows := make([]float64, len(envs))
	bits := make([]int, len(envs))
	runtime.GC()
	var total time.Duration
	for i, e := range envs {
		start := time.Now()
		err := e.Seal(params)
		d := time.Since(start)
		if err != nil {
			return nil, fmt.Errorf("envelope %d: %v", i, err)
		}
		total += d
		ns[i], nonces[i], pows[i] = d.Nanoseconds(), e.Nonce, e.PoW()
		// powToFirstBit (unexported in geth): ceil(log2(pow*size*TTL)), at least 1.
		b := int(math.Ceil(math.Log2(*a.Pow * float64(whisperv6.EnvelopeHeaderLength+len(e.Data)) * float64(e.TTL))))
		if b < 1 {
			b = 1
		}
		bits[i] = b
	}
	return map[string]interface{}{"ns": ns, "total_ns": total.Nanoseconds(), "nonces": nonces, "pow": pows, "bits": bits, "gomaxprocs": runtime.GOMAXPROCS(0)}, nil
}

func (n *node) stats() map[string]interface{} {
	s := n.w.Stats()
	geth := map[string]interface{}{}
	v := reflect.ValueOf(s)
	for i := 0; i < v.NumField(); i++ {
		if v.Field(i).Kind() == reflect.Int {
			geth[v.Type().Field(i).Name] = v.Field(i).Int()
		}
	}
	n.mu.Lock()
	delivered, subs := n.delivered, len(n.subs)
	n.mu.Unlock()
	return map[string]interface{}{
		"geth":              geth,
		"envelopes_pooled":  len(n.w.Envelopes()),
		"peers":             n.srv.PeerCount(),
		"overflow":          n.w.Overflow(),
		"min_pow":           n.w.MinPow(),
		"min_pow_tolerance": n.w.MinPowTolerance(),
		"bloom":             hex.EncodeToString(n.w.BloomFilter()),
		"delivered":         delivered,
		"filters":           subs,
	}
}

func loadOrCreateKey(path string) (*ecdsa.PrivateKey, error) {
	if path == "" {
		return crypto.GenerateKey()
	}
	if k, err := crypto.LoadECDSA(path); err == nil {
		return k, nil
	} else if !os.IsNotExist(err) {
		if _, serr := os.Stat(path); serr == nil {
			return nil, fmt.Errorf("load node key %s: %v", path, err)
		}
	}
	k, err := crypto.GenerateKey()
	if err != nil {
		return nil, err
	}
	return k, crypto.SaveECDSA(path, k)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "TCP listen address")
	maxPeers := flag.Int("maxpeers", 25, "p2p MaxPeers")
	nodeKey := flag.String("nodekey", "", "node key file (hex); created if missing; empty = fresh key")
	minPow := flag.Float64("minpow", whisperv6.DefaultMinimumPoW, "whisper MinimumAcceptedPOW (config; see README about tolerance)")
	maxSize := flag.Uint("maxsize", uint(whisperv6.DefaultMaxMessageSize), "whisper MaxMessageSize")
	name := flag.String("name", "strata-refnode/geth-v1.9.20", "devp2p client name")
	verbosity := flag.Int("verbosity", 2, "log level to stderr (0 crit .. 5 trace)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file (for benchmarks)")
	sniffMessages := flag.Bool("sniff-messages", true, "read and count the envelopes of incoming code-1 packets (peers' envelopes_received); false for benchmarks")
	flag.Parse()

	log.Root().SetHandler(log.LvlFilterHandler(log.Lvl(*verbosity), log.StreamHandler(os.Stderr, log.TerminalFormat(false))))

	stopProfile := func() {}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "refnode:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "refnode:", err)
			os.Exit(1)
		}
		stopProfile = func() {
			pprof.StopCPUProfile()
			f.Close()
		}
	}

	key, err := loadOrCreateKey(*nodeKey)
	if err != nil {
		fmt.Fprintln(os.Stderr, "refnode:", err)
		os.Exit(1)
	}
	cfg := whisperv6.DefaultConfig
	cfg.MinimumAcceptedPOW = *minPow
	cfg.MaxMessageSize = uint32(*maxSize)
	w := whisperv6.StandaloneWhisperService(&cfg)
	n := &node{out: &output{enc: json.NewEncoder(os.Stdout)}, w: w, key: key, pst: map[enode.ID]*peerState{}, subs: map[string]*subscription{}, sniffMessages: *sniffMessages}
	n.srv = &p2p.Server{Config: p2p.Config{
		PrivateKey: key, MaxPeers: *maxPeers, ListenAddr: *listen, NoDiscovery: true,
		Protocols: n.wrapProtocols(w.Protocols()), Name: *name,
	}}
	if err := n.srv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "refnode: p2p start:", err)
		os.Exit(1)
	}
	if err := w.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "refnode: whisper start:", err)
		os.Exit(1)
	}
	go n.peerEvents()
	go n.pollFilters()
	n.out.send(map[string]interface{}{"event": "ready", "enode": n.srv.Self().URLv4()})

	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var req request
		if err := json.Unmarshal(line, &req); err != nil {
			n.out.send(map[string]interface{}{"id": nil, "error": "bad json: " + err.Error()})
			continue
		}
		var a args
		if err := json.Unmarshal(line, &a); err != nil {
			n.out.send(map[string]interface{}{"id": req.ID, "error": "bad arguments: " + err.Error()})
			continue
		}
		if req.Cmd == "quit" {
			n.out.send(map[string]interface{}{"id": req.ID, "ok": true})
			break
		}
		res, err := n.handle(req.Cmd, &a)
		if err != nil {
			n.out.send(map[string]interface{}{"id": req.ID, "error": err.Error()})
			continue
		}
		res["id"] = req.ID
		res["ok"] = true
		n.out.send(res)
	}
	stopProfile()
	w.Stop()
	n.srv.Stop()
}
