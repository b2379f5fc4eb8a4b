package node

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Tracer is a GossipSub raw tracer that counts what the router drops and
// tells when a published message has been written to a peer, so that an
// executor can wait for its REMOVAL to leave before it exits.
type Tracer struct {
	droppedRPCs         atomic.Uint64
	undeliverable       atomic.Uint64
	throttled           atomic.Uint64
	queueFull           atomic.Uint64
	validationThrottled atomic.Uint64

	mu      sync.Mutex
	waiters map[string]chan struct{} // guarded by mu: message id -> closed when sent
}

var _ pubsub.RawTracer = (*Tracer)(nil)

// NewTracer returns an empty tracer; pass Option() to the router.
func NewTracer() *Tracer { return &Tracer{waiters: map[string]chan struct{}{}} }

// Option installs the tracer.
func (t *Tracer) Option() pubsub.Option { return pubsub.WithRawTracer(t) }

// Drops counts what the router dropped.
type Drops struct {
	// RPCs not sent because a peer's outbound queue was full.
	RPCs uint64
	// Messages validated but not delivered to a full subscription.
	Undeliverable uint64
	// Messages never validated: the validation queue was full, or the
	// validation was throttled. These are lost before the registry.
	ValidationQueueFull, ValidationThrottled uint64
	// Peers throttled by the peer gater.
	PeersThrottled uint64
}

// Dropped returns the drops so far.
func (t *Tracer) Dropped() Drops {
	return Drops{
		RPCs:                t.droppedRPCs.Load(),
		Undeliverable:       t.undeliverable.Load(),
		ValidationQueueFull: t.queueFull.Load(),
		ValidationThrottled: t.validationThrottled.Load(),
		PeersThrottled:      t.throttled.Load(),
	}
}

// Expect registers interest in the message with this data; the returned
// channel closes when it is sent.
func (t *Tracer) Expect(data []byte) (<-chan struct{}, func()) {
	sum := sha256.Sum256(data)
	id := string(sum[:])
	ch := make(chan struct{})
	t.mu.Lock()
	t.waiters[id] = ch
	t.mu.Unlock()
	return ch, func() {
		t.mu.Lock()
		if t.waiters[id] == ch {
			delete(t.waiters, id)
		}
		t.mu.Unlock()
	}
}

func (t *Tracer) SendRPCCompleted(rpc *pubsub.RPC, _ peer.ID, _ time.Duration) {
	if len(rpc.GetPublish()) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.waiters) == 0 {
		return
	}
	for _, m := range rpc.GetPublish() {
		sum := sha256.Sum256(m.GetData())
		if ch, ok := t.waiters[string(sum[:])]; ok {
			close(ch)
			delete(t.waiters, string(sum[:]))
		}
	}
}

func (t *Tracer) DropRPC(*pubsub.RPC, peer.ID)             { t.droppedRPCs.Add(1) }
func (t *Tracer) UndeliverableMessage(*pubsub.Message)     { t.undeliverable.Add(1) }
func (t *Tracer) ThrottlePeer(peer.ID)                     { t.throttled.Add(1) }
func (t *Tracer) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (t *Tracer) OnClosedOutboundStream(peer.ID)           {}
func (t *Tracer) AddPeer(peer.ID, protocol.ID)             {}
func (t *Tracer) RemovePeer(peer.ID)                       {}
func (t *Tracer) Join(string)                              {}
func (t *Tracer) Leave(string)                             {}
func (t *Tracer) Graft(peer.ID, string)                    {}
func (t *Tracer) Prune(peer.ID, string)                    {}
func (t *Tracer) ValidateMessage(*pubsub.Message)          {}
func (t *Tracer) DeliverMessage(*pubsub.Message)           {}
func (t *Tracer) DuplicateMessage(*pubsub.Message)         {}
func (t *Tracer) RecvRPC(*pubsub.RPC)                      {}
func (t *Tracer) SendRPC(*pubsub.RPC, peer.ID)             {}

// RejectMessage counts the messages the router dropped before validation:
// the validation queue was full, or validation was throttled. (Messages
// our validator rejected are counted by the validator itself.)
func (t *Tracer) RejectMessage(_ *pubsub.Message, reason string) {
	switch reason {
	case pubsub.RejectValidationQueueFull:
		t.queueFull.Add(1)
	case pubsub.RejectValidationThrottled:
		t.validationThrottled.Add(1)
	}
}
