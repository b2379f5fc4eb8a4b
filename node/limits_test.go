package node

import (
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	ma "github.com/multiformats/go-multiaddr"
)

// admitted opens n inbound connections, each from its own peer and each
// with a GossipSub stream, in a resource manager built with conns, and
// returns how many connections and streams it admitted.
func admitted(t *testing.T, conns Connections, n int) (connsOK, streamsOK int) {
	t.Helper()
	rm, err := newResourceManager(conns, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	// Loopback: exempt from the per-address limits, as the scale test's
	// hosts are. Without a file descriptor, like QUIC's connections: the
	// machine's descriptor limit is not what is tested here.
	from := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	var scopes []network.ConnManagementScope
	var streams []network.StreamManagementScope
	defer func() {
		for _, s := range streams {
			s.Done()
		}
		for _, s := range scopes {
			s.Done()
		}
	}()
	for i := range n {
		c, err := rm.OpenConnection(network.DirInbound, false, from)
		if err != nil {
			continue
		}
		scopes = append(scopes, c)
		p := peer.ID(fmt.Sprintf("executor-%d", i))
		if err := c.SetPeer(p); err != nil {
			continue
		}
		connsOK++
		s, err := rm.OpenStream(p, network.DirInbound)
		if err != nil {
			continue
		}
		streams = append(streams, s)
		if s.SetProtocol(protocol.ID("/meshsub/1.1.0")) == nil {
			streamsOK++
		}
	}
	return connsOK, streamsOK
}

// A validator's resource manager admits its whole registry, each executor
// on its own connection with its GossipSub stream; go-libp2p's defaults,
// which executors and clients keep, refuse a few hundred connections in
// (about 250 on a machine with 23 GiB, fewer with less memory).
func TestValidatorAdmitsItsExecutors(t *testing.T) {
	const n = 2000
	c := ValidatorConnections(n, 16)
	if gotC, gotS := admitted(t, c, n); gotC != n || gotS != n {
		t.Errorf("validator sized for %d executors admitted %d connections and %d GossipSub streams of %d", n, gotC, gotS, n)
	}
	if gotC, _ := admitted(t, DefaultConnections(), n); gotC >= n {
		t.Errorf("go-libp2p's default limits admitted all %d connections: this test shows nothing", n)
	}
}

// The connection manager of a validator never trims below its registry,
// and the resource manager does not refuse before the connection manager
// would trim (go-libp2p warns at start otherwise).
func TestValidatorConnectionWatermarks(t *testing.T) {
	for _, maxExecutors := range []int{1, 200, 1000, 10000, 100000} {
		c := ValidatorConnections(maxExecutors, 16)
		if c.Low < maxExecutors+64 || c.High <= c.Low {
			t.Errorf("max-executors %d: watermarks %d/%d, want low above the registry with room for clients, high above low", maxExecutors, c.Low, c.High)
		}
		l := LimitConfig(c, 0).ToPartialLimitConfig()
		if int(l.System.Conns) < c.High || int(l.System.ConnsInbound) < c.High {
			t.Errorf("max-executors %d: resource manager admits %d connections (%d inbound), below the high watermark %d", maxExecutors, l.System.Conns, l.System.ConnsInbound, c.High)
		}
		if int(l.Transient.ConnsInbound) < c.Extra/4 {
			t.Errorf("max-executors %d: %d connections in the handshake at once, want at least %d (a validator's restart brings every executor back at once)", maxExecutors, l.Transient.ConnsInbound, c.Extra/4)
		}
		if id := l.Service[identify.ServiceName]; int(id.StreamsInbound) < c.High/2 {
			t.Errorf("max-executors %d: %d Identify streams in, want at least %d", maxExecutors, id.StreamsInbound, c.High/2)
		}
		cm, err := c.connManager()
		if err != nil {
			t.Fatal(err)
		}
		rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(LimitConfig(c, 0)))
		if err != nil {
			t.Fatal(err)
		}
		if err := cm.CheckLimit(rm.(interface{ GetConnLimit() int })); err != nil {
			t.Errorf("max-executors %d: %v", maxExecutors, err)
		}
		rm.Close()
		cm.Close()
	}
	if d := DefaultConnections(); d.Low != 160 || d.High != 192 || d.Extra != 0 {
		t.Errorf("executors and clients: %+v, want go-libp2p's watermarks 160/192 and no extra", d)
	}
}
