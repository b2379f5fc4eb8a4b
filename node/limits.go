package node

import (
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-libp2p/x/rate"

	lp "github.com/lloom/lloom/protocol"
)

// Connections sizes the connections a host keeps and admits. The zero
// value is DefaultConnections.
//
// Two go-libp2p parts decide: the connection manager closes connections
// once there are more than High (those of the least valuable peers: never
// a protected one such as a bootstrap validator, never one younger than a
// minute) until Low remain; the resource manager refuses connections and
// streams past its limits, which go-libp2p scales with the machine's
// memory (about 250 inbound connections with 23 GiB) — too few for a
// validator, whose executors each hold a connection to it all the time.
type Connections struct {
	// Low and High are the connection manager's watermarks.
	Low, High int
	// Extra is added to the resource manager's machine-scaled limits:
	// that many more inbound connections, in the handshake too, and the
	// streams each brings (GossipSub in both directions, Identify, ping).
	Extra int
	// PerIP is how many connections one IPv4 address (one IPv6 /56) may
	// hold at once, and twice as many may open in a burst; 0 keeps
	// go-libp2p's 8 (burst 16, then one per 5 s). Loopback is exempt.
	PerIP int
}

// DefaultConnections are the limits of executors and clients: go-libp2p's
// watermarks (160 and 192) and machine-scaled limits. An executor holds a
// connection to each validator (protected) and to the clients of the
// moment; a client to its validators and the executors it calls.
func DefaultConnections() Connections { return Connections{Low: 160, High: 192} }

// ValidatorConnections sizes a validator for maxExecutors executors, each
// with its own connection, and maxPerIP of them behind one address (0:
// no limit): the connection manager trims nothing while the registry's
// executors and a headroom for clients, other validators and newcomers
// waiting for a place fit, and the resource manager admits more than
// that, so that the connection manager, which keeps the valuable peers,
// decides rather than refusals in the handshake.
func ValidatorConnections(maxExecutors, maxPerIP int) Connections {
	headroom := max(256, maxExecutors/4)
	c := Connections{
		Low:   maxExecutors + headroom/2,
		High:  maxExecutors + headroom,
		Extra: maxExecutors + 2*headroom,
		PerIP: maxPerIP + 8, // the executors behind one address, and a few clients
	}
	if maxPerIP == 0 {
		c.PerIP = c.High
	}
	return c
}

func (c Connections) orDefault() Connections {
	if c == (Connections{}) {
		return DefaultConnections()
	}
	return c
}

// connManager builds the connection manager c describes.
func (c Connections) connManager() (*connmgr.BasicConnMgr, error) {
	c = c.orDefault()
	cm, err := connmgr.NewConnManager(c.Low, c.High)
	if err != nil {
		return nil, fmt.Errorf("node: connection manager: %w", err)
	}
	return cm, nil
}

// validatorFDFraction is the share of half of RLIMIT_NOFILE (what
// go-libp2p's AutoScale passes) a validator's connections may hold.
const validatorFDFraction = 1.8

// TCPConnLimit is how many TCP connections the resource manager of a host
// with these limits admits by file descriptors (derived from
// RLIMIT_NOFILE). A validator warns when it is below High.
func (c Connections) TCPConnLimit() int {
	l := LimitConfig(c, 0).ToPartialLimitConfig().System.FD
	if l == rcmgr.Unlimited {
		return math.MaxInt
	}
	return int(l)
}

// gossipProtocols are the stream protocols of GossipSub, one stream per
// peer and direction for as long as the connection lasts.
var gossipProtocols = []protocol.ID{pubsub.GossipSubID_v13, pubsub.GossipSubID_v12, pubsub.GossipSubID_v11, pubsub.GossipSubID_v10, pubsub.FloodSubID}

// raise adds n connections and what they bring to go-libp2p's scaled
// limits.
func (c Connections) raise(limits *rcmgr.ScalingLimitConfig) {
	n := c.Extra
	if n <= 0 {
		return
	}
	for _, l := range []*rcmgr.BaseLimit{&limits.SystemBaseLimit, &limits.AllowlistedSystemBaseLimit} {
		l.ConnsInbound += n
		l.Conns += n
		l.StreamsInbound += 4 * n
		l.StreamsOutbound += 4 * n
		l.Streams += 8 * n
	}
	// A TCP connection holds a file descriptor (QUIC's share one socket).
	// go-libp2p takes half of RLIMIT_NOFILE; a validator has few other
	// files, so it takes 90 %.
	limits.SystemLimitIncrease.FDFraction = validatorFDFraction
	limits.AllowlistedSystemLimitIncrease.FDFraction = validatorFDFraction
	// Connections wait in the transient scope for their handshake: a
	// burst of executors (a validator's restart) must not be refused there.
	for _, l := range []*rcmgr.BaseLimit{&limits.TransientBaseLimit, &limits.AllowlistedTransientBaseLimit} {
		l.ConnsInbound += n / 4
		l.Conns += n / 4
		l.FD += n / 4
		l.StreamsInbound += n / 4
		l.Streams += n / 4
	}
	for _, id := range gossipProtocols {
		limits.AddProtocolLimit(id, rcmgr.BaseLimit{
			StreamsInbound: 2 * n, StreamsOutbound: 2 * n, Streams: 4 * n, Memory: limits.ProtocolBaseLimit.Memory,
		}, limits.ProtocolLimitIncrease)
	}
	// Every new connection runs Identify both ways; ping is light.
	limits.AddServiceLimit(identify.ServiceName, rcmgr.BaseLimit{
		StreamsInbound: n / 2, StreamsOutbound: n / 2, Streams: n, Memory: 4 << 20,
	}, rcmgr.BaseLimitIncrease{StreamsInbound: 64, StreamsOutbound: 64, Streams: 128, Memory: 4 << 20})
	for _, id := range []protocol.ID{identify.ID, identify.IDPush} {
		limits.AddProtocolLimit(id, rcmgr.BaseLimit{
			StreamsInbound: n / 2, StreamsOutbound: n / 2, Streams: n, Memory: 4 << 20,
		}, rcmgr.BaseLimitIncrease{StreamsInbound: 64, StreamsOutbound: 64, Streams: 128, Memory: 4 << 20})
	}
	pingLimit := rcmgr.BaseLimit{StreamsInbound: n / 4, StreamsOutbound: n / 4, Streams: n / 4, Memory: 4 << 20}
	pingIncrease := rcmgr.BaseLimitIncrease{StreamsInbound: 64, StreamsOutbound: 64, Streams: 64, Memory: 4 << 20}
	limits.AddServiceLimit(ping.ServiceName, pingLimit, pingIncrease)
	limits.AddProtocolLimit(ping.ID, pingLimit, pingIncrease)
}

// perIP returns the resource manager's per-address options, nil for
// go-libp2p's.
func (c Connections) perIP() []rcmgr.Option {
	n := c.PerIP
	if n <= 0 {
		return nil
	}
	rps := max(0.2, 0.2*float64(n)/8) // go-libp2p's 0.2/s for 8
	loopback := []rate.PrefixLimit{{Prefix: netip.MustParsePrefix("127.0.0.0/8")}, {Prefix: netip.MustParsePrefix("::1/128")}}
	return []rcmgr.Option{
		rcmgr.WithLimitPerSubnet(
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: n}},
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 56, ConnCount: n}, {PrefixLength: 48, ConnCount: min(8*n, math.MaxInt/8)}},
		),
		rcmgr.WithConnRateLimiters(&rate.Limiter{
			NetworkPrefixLimits: loopback,
			SubnetRateLimiter: rate.SubnetLimiter{
				IPv4SubnetLimits: []rate.SubnetLimit{{PrefixLength: 32, Limit: rate.Limit{RPS: rps, Burst: 2 * n}}},
				IPv6SubnetLimits: []rate.SubnetLimit{
					{PrefixLength: 56, Limit: rate.Limit{RPS: rps, Burst: 2 * n}},
					{PrefixLength: 48, Limit: rate.Limit{RPS: 2.5 * rps, Burst: 10 * n}},
				},
				GracePeriod: time.Minute,
			},
		}),
	}
}

// Stream limits for lloom's protocols. A request/response stream lives for
// one exchange, so a peer never needs many at once: a client pages through
// a validator's answers one query at a time, and a validator pulls an
// executor's announcement once per heartbeat at most.
const (
	queryStreamsPerPeer = 8
	queryStreamsTotal   = 1024
	pullStreamsPerPeer  = 4
	pullStreamsTotal    = 256
	// The change feed's streams live long; the validator caps its
	// subscribers itself (4 per peer, 64 in all by default).
	watchStreamsPerPeer = 4
	watchStreamsTotal   = 256
	streamMemory        = 8 << 20 // 2 x the largest response
)

// LimitConfig returns go-libp2p's default resource limits, scaled to the
// machine, raised for conns (see Connections.Extra), with explicit limits
// for lloom's protocols.
// inferenceStreams > 0 lets that many /lloom/inference/1.0.0 streams run
// per peer in each direction: a gateway is one peer that may hold an
// executor's whole capacity and queue (go-libp2p's default is about 76).
func LimitConfig(conns Connections, inferenceStreams int) rcmgr.ConcreteLimitConfig {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	conns.raise(&limits)
	for _, p := range []struct {
		id             protocol.ID
		perPeer, total int
	}{
		{lp.QueryProtocol, queryStreamsPerPeer, queryStreamsTotal},
		{lp.AnnouncementProtocol, pullStreamsPerPeer, pullStreamsTotal},
		{lp.WatchProtocol, watchStreamsPerPeer, watchStreamsTotal},
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
func newResourceManager(conns Connections, inferenceStreams int) (network.ResourceManager, error) {
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(LimitConfig(conns, inferenceStreams)), conns.perIP()...)
	if err != nil {
		return nil, fmt.Errorf("node: resource manager: %w", err)
	}
	return rm, nil
}
