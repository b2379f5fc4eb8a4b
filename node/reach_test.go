package node

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/rs/zerolog"
)

// dialRecorder is a connection gater that records every address dialed.
type dialRecorder struct {
	mu     sync.Mutex
	dialed []ma.Multiaddr
}

func (d *dialRecorder) InterceptPeerDial(peer.ID) bool { return true }
func (d *dialRecorder) InterceptAddrDial(_ peer.ID, a ma.Multiaddr) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dialed = append(d.dialed, a)
	return true
}
func (d *dialRecorder) InterceptAccept(network.ConnMultiaddrs) bool { return true }
func (d *dialRecorder) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}
func (d *dialRecorder) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// TestDefaultsDialOnlyLoopback: a validator and an executor with their
// reachability defaults (relay, AutoNAT, hole punching, DHT), on loopback,
// dial nothing but loopback: no public bootstrap peers, no UPnP, no mDNS.
func TestDefaultsDialOnlyLoopback(t *testing.T) {
	loop := []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0"), ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")}
	rec := &dialRecorder{}
	newKey := func() crypto.PrivKey { k, _, _ := crypto.GenerateEd25519Key(rand.Reader); return k }
	vh, err := NewHost(HostConfig{Key: newKey(), Listen: loop, Gater: rec,
		Reach: Reach{Role: ReachValidator, RelayService: true, RelayLimits: DefaultRelayLimits()}})
	if err != nil {
		t.Fatal(err)
	}
	defer vh.Close()
	rs := &RelaySource{}
	eh, err := NewHost(HostConfig{Key: newKey(), Listen: loop, Gater: rec, Reach: Reach{Role: ReachExecutor, Relays: rs.Source}})
	if err != nil {
		t.Fatal(err)
	}
	defer eh.Close()
	rs.Bind(eh)
	vd, err := StartDiscovery(vh, "hygiene", DiscoveryConfig{DHT: true, Server: true}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer vd.Close()
	bp := []BootstrapPeer{{ID: vh.ID(), Addr: vh.Addrs()[0]}}
	ed, err := StartDiscovery(eh, "hygiene", DiscoveryConfig{DHT: true, Bootstrap: bp}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer ed.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := eh.Connect(ctx, peer.AddrInfo{ID: vh.ID(), Addrs: vh.Addrs()}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // DHT bootstrap, AutoNAT, autorelay get their turn
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.dialed) == 0 {
		t.Fatal("the recorder saw no dial at all: it is not in the dial path")
	}
	for _, a := range rec.dialed {
		if !manet.IsIPLoopback(a) {
			t.Errorf("dialed %s: a node on loopback with defaults must dial only loopback", a)
		}
	}
}
