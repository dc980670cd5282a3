// The privacy control API: own address, shared addresses (topics and
// their bloom), and the PoW requirement.

package whisper

import (
	"context"
	"fmt"

	commonv1 "github.com/strata-msg/strata/core/api/common/v1"
	privacyv1 "github.com/strata-msg/strata/core/api/privacy/v1"
	"github.com/strata-msg/strata/plugins/whisper/wire"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
)

type subscription struct {
	topic wire.TopicType
	key   []byte
}

// topicsBloom is the union of the blooms of the node's topics.
func (l *Layer) topicsBloom() []byte {
	bloom := make([]byte, wire.BloomFilterSize)
	or := func(t wire.TopicType) {
		for i, b := range wire.TopicToBloom(t) {
			bloom[i] |= b
		}
	}
	or(l.ownTopic)
	for _, s := range l.subs {
		or(s.topic)
	}
	return bloom
}

// updateBloom recomputes a light node's bloom and returns code-3 packets
// for every peer if it changed.
func (l *Layer) updateBloom() []*commonv1.Frame {
	if !l.cfg.Light {
		return nil
	}
	nb := l.topicsBloom()
	if string(nb) == string(l.bloom) {
		return nil
	}
	l.prevBloom, l.bloom, l.bloomChanged = l.bloom, nb, l.now()
	return l.toAll(wire.BloomFilterExCode, encodeBloom(nb))
}

// SetMinPoW changes the node's PoW requirement and announces it to every
// peer (code 2); the previous value is tolerated for 10 s.
func (l *Layer) SetMinPoW(ctx context.Context, v float64) error {
	if !validPoW(v) {
		return fmt.Errorf("whisper: invalid PoW requirement %v", v)
	}
	l.mu.Lock()
	if l.key == nil {
		l.mu.Unlock()
		return fmt.Errorf("whisper: not configured")
	}
	l.prevMinPoW, l.minPoW, l.powChanged = l.minPoW, v, l.now()
	l.enqueue(l.toAll(wire.PowRequirementCode, encodePoWRequirement(v)))
	l.mu.Unlock()
	return nil
}

// OwnAddress implements privacyv1.ControlServer.
func (l *Layer) OwnAddress(context.Context, *privacyv1.OwnAddressRequest) (*privacyv1.OwnAddressResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.key == nil {
		return nil, grpcstatus.Error(codes.FailedPrecondition, "whisper: not configured")
	}
	return &privacyv1.OwnAddressResponse{Address: l.ownAddr, DisplayAddress: l.display()}, nil
}

// Subscribe implements privacyv1.ControlServer: a public chat (or a group
// with its own key). Topic = Keccak256(name)[:4]; key = req.key if given
// (32 bytes) else geth's password KDF of the name.
func (l *Layer) Subscribe(ctx context.Context, req *privacyv1.SubscribeRequest) (*privacyv1.SubscribeResponse, error) {
	if req.GetName() == "" {
		return nil, grpcstatus.Error(codes.InvalidArgument, "whisper: a shared address needs a name")
	}
	key := req.GetKey()
	if len(key) > 0 {
		if len(key) != wire.AESKeyLength || allZero(key) {
			return nil, grpcstatus.Errorf(codes.InvalidArgument, "whisper: key must be %d non-zero bytes", wire.AESKeyLength)
		}
		key = append([]byte(nil), key...)
	} else {
		var err error
		if key, err = wire.SymKeyFromPassword(req.GetName()); err != nil {
			return nil, grpcstatus.Error(codes.Internal, err.Error())
		}
	}
	topic := NameTopic(req.GetName())
	addr := encodeShared(topic, key)
	l.mu.Lock()
	if l.key == nil {
		l.mu.Unlock()
		return nil, grpcstatus.Error(codes.FailedPrecondition, "whisper: not configured")
	}
	l.subs[string(addr)] = &subscription{topic: topic, key: key}
	l.enqueue(l.updateBloom())
	l.mu.Unlock()
	return &privacyv1.SubscribeResponse{Address: addr}, nil
}

// Unsubscribe implements privacyv1.ControlServer.
func (l *Layer) Unsubscribe(ctx context.Context, req *privacyv1.UnsubscribeRequest) (*privacyv1.UnsubscribeResponse, error) {
	a, err := decodeAddress(req.GetAddress())
	if err != nil || a.kind != addrKindShared {
		return nil, grpcstatus.Error(codes.InvalidArgument, "whisper: not a shared address")
	}
	l.mu.Lock()
	if l.key == nil {
		l.mu.Unlock()
		return nil, grpcstatus.Error(codes.FailedPrecondition, "whisper: not configured")
	}
	if _, ok := l.subs[string(req.GetAddress())]; !ok {
		l.mu.Unlock()
		return nil, grpcstatus.Error(codes.NotFound, "whisper: not subscribed")
	}
	delete(l.subs, string(req.GetAddress()))
	l.enqueue(l.updateBloom())
	l.mu.Unlock()
	return &privacyv1.UnsubscribeResponse{}, nil
}
