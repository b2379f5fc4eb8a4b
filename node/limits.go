package node

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"

	lp "github.com/lloom/lloom/protocol"
)

// Stream limits for lloom's protocols. A request/response stream lives for
// one exchange, so a peer never needs many at once: a client pages through
// a validator's answers one query at a time, and a validator pulls an
// executor's announcement once per heartbeat at most.
const (
	queryStreamsPerPeer = 8
	queryStreamsTotal   = 1024
	pullStreamsPerPeer  = 4
	pullStreamsTotal    = 256
	streamMemory        = 8 << 20 // 2 x the largest response
)

// LimitConfig returns go-libp2p's default resource limits, scaled to the
// machine, with explicit limits for lloom's protocols.
// inferenceStreams > 0 lets that many /lloom/inference/1.0.0 streams run
// per peer in each direction: a gateway is one peer that may hold an
// executor's whole capacity and queue (go-libp2p's default is about 76).
func LimitConfig(inferenceStreams int) rcmgr.ConcreteLimitConfig {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	for _, p := range []struct {
		id             protocol.ID
		perPeer, total int
	}{
		{lp.QueryProtocol, queryStreamsPerPeer, queryStreamsTotal},
		{lp.AnnouncementProtocol, pullStreamsPerPeer, pullStreamsTotal},
	} {
		limits.AddProtocolPeerLimit(p.id, rcmgr.BaseLimit{
			Streams: 2 * p.perPeer, StreamsInbound: p.perPeer, StreamsOutbound: p.perPeer, Memory: streamMemory,
		}, rcmgr.BaseLimitIncrease{})
		limits.AddProtocolLimit(p.id, rcmgr.BaseLimit{
			Streams: 2 * p.total, StreamsInbound: p.total, StreamsOutbound: p.total, Memory: 64 * streamMemory,
		}, rcmgr.BaseLimitIncrease{})
	}
	if n := inferenceStreams; n > 0 {
		limits.AddProtocolPeerLimit(lp.InferenceProtocol, rcmgr.BaseLimit{
			Streams: 2 * n, StreamsInbound: n, StreamsOutbound: n, Memory: int64(n) * streamMemory,
		}, rcmgr.BaseLimitIncrease{})
		limits.AddProtocolLimit(lp.InferenceProtocol, rcmgr.BaseLimit{
			Streams: 8 * n, StreamsInbound: 4 * n, StreamsOutbound: 4 * n, Memory: 4 * int64(n) * streamMemory,
		}, rcmgr.BaseLimitIncrease{})
		// The peer scope holds the inference streams and everything else.
		limits.PeerBaseLimit.StreamsInbound = max(limits.PeerBaseLimit.StreamsInbound, n+64)
		limits.PeerBaseLimit.StreamsOutbound = max(limits.PeerBaseLimit.StreamsOutbound, n+64)
		limits.PeerBaseLimit.Streams = max(limits.PeerBaseLimit.Streams, 2*n+128)
	}
	return limits.AutoScale()
}

// newResourceManager builds the resource manager every lloom host uses.
func newResourceManager(inferenceStreams int) (network.ResourceManager, error) {
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(LimitConfig(inferenceStreams)))
	if err != nil {
		return nil, fmt.Errorf("node: resource manager: %w", err)
	}
	return rm, nil
}
