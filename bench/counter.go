package bench

import (
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Counter is a GossipSub raw tracer for the node under test. It counts
// every message the router finished with (delivered, rejected, ignored,
// duplicate) and every way the router drops work: node.Tracer counts
// full peer queues, full subscriptions and throttled peers, but not a full
// validation queue, which is where an overloaded validator loses messages.
// Install it with Option() next to the node's own tracer.
type Counter struct {
	Validated     atomic.Uint64 // entered validation
	Delivered     atomic.Uint64 // accepted
	Rejected      atomic.Uint64 // refused by the topic validator
	Ignored       atomic.Uint64 // ignored by the topic validator
	Duplicates    atomic.Uint64
	QueueFull     atomic.Uint64 // dropped: validation queue full
	Throttled     atomic.Uint64 // dropped: validation throttled, or peer throttled
	DroppedRPCs   atomic.Uint64 // dropped: a peer's outbound queue full
	Undeliverable atomic.Uint64 // dropped: the subscription's queue full
	OtherRejects  atomic.Uint64
}

var _ pubsub.RawTracer = (*Counter)(nil)

// Option installs the counter in a router.
func (c *Counter) Option() pubsub.Option { return pubsub.WithRawTracer(c) }

// Done is the number of messages the router has finished with: what a
// closed-loop publisher may count as no longer in flight.
func (c *Counter) Done() uint64 {
	return c.Delivered.Load() + c.Rejected.Load() + c.Ignored.Load() + c.Duplicates.Load() +
		c.QueueFull.Load() + c.Throttled.Load() + c.OtherRejects.Load()
}

// Drops is every message or RPC lost to a full queue or to throttling.
func (c *Counter) Drops() uint64 {
	return c.QueueFull.Load() + c.Throttled.Load() + c.DroppedRPCs.Load() + c.Undeliverable.Load()
}

func (c *Counter) ValidateMessage(*pubsub.Message)  { c.Validated.Add(1) }
func (c *Counter) DeliverMessage(*pubsub.Message)   { c.Delivered.Add(1) }
func (c *Counter) DuplicateMessage(*pubsub.Message) { c.Duplicates.Add(1) }
func (c *Counter) RejectMessage(_ *pubsub.Message, reason string) {
	switch reason {
	case pubsub.RejectValidationFailed:
		c.Rejected.Add(1)
	case pubsub.RejectValidationIgnored:
		c.Ignored.Add(1)
	case pubsub.RejectValidationQueueFull:
		c.QueueFull.Add(1)
	case pubsub.RejectValidationThrottled:
		c.Throttled.Add(1)
	default:
		c.OtherRejects.Add(1)
	}
}
func (c *Counter) DropRPC(*pubsub.RPC, peer.ID)                         { c.DroppedRPCs.Add(1) }
func (c *Counter) UndeliverableMessage(*pubsub.Message)                 { c.Undeliverable.Add(1) }
func (c *Counter) ThrottlePeer(peer.ID)                                 { c.Throttled.Add(1) }
func (c *Counter) AddPeer(peer.ID, protocol.ID)                         {}
func (c *Counter) RemovePeer(peer.ID)                                   {}
func (c *Counter) Join(string)                                          {}
func (c *Counter) Leave(string)                                         {}
func (c *Counter) Graft(peer.ID, string)                                {}
func (c *Counter) Prune(peer.ID, string)                                {}
func (c *Counter) RecvRPC(*pubsub.RPC)                                  {}
func (c *Counter) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (c *Counter) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (c *Counter) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (c *Counter) OnClosedOutboundStream(peer.ID)                       {}
