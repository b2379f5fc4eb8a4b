package nodetest

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Partition is a connection gater that cuts a node off from chosen peers,
// in both directions, until healed: a network partition without a network.
type Partition struct {
	mu      sync.Mutex
	blocked map[peer.ID]bool // guarded by mu
}

var _ connmgr.ConnectionGater = (*Partition)(nil)

// NewPartition returns a gater that blocks nobody yet.
func NewPartition() *Partition { return &Partition{blocked: map[peer.ID]bool{}} }

// Cut blocks the peers and closes h's connections to them.
func (g *Partition) Cut(h host.Host, peers ...peer.ID) {
	g.mu.Lock()
	for _, p := range peers {
		g.blocked[p] = true
	}
	g.mu.Unlock()
	for _, p := range peers {
		h.Network().ClosePeer(p)
	}
}

// Heal lets every peer through again.
func (g *Partition) Heal() {
	g.mu.Lock()
	defer g.mu.Unlock()
	clear(g.blocked)
}

func (g *Partition) allowed(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.blocked[p]
}

func (g *Partition) InterceptPeerDial(p peer.ID) bool                 { return g.allowed(p) }
func (g *Partition) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.allowed(p) }
func (g *Partition) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *Partition) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.allowed(p)
}
func (g *Partition) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
