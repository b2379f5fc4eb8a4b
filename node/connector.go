package node

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/rs/zerolog"
)

// Backoff bounds for reconnecting to bootstrap peers.
const (
	minRedial = 250 * time.Millisecond
	maxRedial = 15 * time.Second
)

// Connector keeps the host connected to its bootstrap peers: it dials each
// one, retries with jittered exponential backoff while it is unreachable,
// and redials soon after a connection drops. It never gives up; a node
// keeps running while no bootstrap peer answers.
type Connector struct {
	h     host.Host
	peers []BootstrapPeer
	log   zerolog.Logger

	mu    sync.Mutex
	ids   map[int]peer.ID // guarded by mu: the id learned per entry
	kicks []chan struct{} // one per entry: its peer disconnected
	// checks counts connection checks, so that a test can tell a loop
	// that waits from one that spins.
	checks atomic.Uint64
}

// NewConnector returns a connector for peers; Run starts it.
func NewConnector(h host.Host, peers []BootstrapPeer, log zerolog.Logger) *Connector {
	kicks := make([]chan struct{}, len(peers))
	for i := range kicks {
		kicks[i] = make(chan struct{}, 1)
	}
	return &Connector{h: h, peers: peers, log: log, ids: map[int]peer.ID{}, kicks: kicks}
}

// Run dials until ctx ends.
func (c *Connector) Run(ctx context.Context) {
	if len(c.peers) == 0 {
		return
	}
	// Only the entries of the peer that went away recheck: clients come
	// and go all the time, and must not wake the bootstrap loops.
	notifee := &network.NotifyBundle{DisconnectedF: func(_ network.Network, conn network.Conn) {
		gone := conn.RemotePeer()
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, k := range c.kicks {
			if id := c.ids[i]; id == "" || id == gone {
				select {
				case k <- struct{}{}:
				default:
				}
			}
		}
	}}
	c.h.Network().Notify(notifee)
	defer c.h.Network().StopNotify(notifee)

	var wg sync.WaitGroup
	for i := range c.peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.keep(ctx, i)
		}()
	}
	wg.Wait()
}

func (c *Connector) keep(ctx context.Context, i int) {
	bp := c.peers[i]
	delay := minRedial
	failures := 0
	connected := false // ever: the first connection is not a reconnection
	for {
		c.checks.Add(1)
		id, err := c.connect(ctx, i)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			lvl := c.log.Debug()
			if failures == 1 || failures%10 == 0 {
				lvl = c.log.Warn()
			}
			lvl.Err(err).Str("validator", bp.Raw).Int("attempt", failures).Str("retry_in", delay.String()).Msg("Validator unreachable; retrying")
		} else {
			switch {
			case !connected:
				c.log.Info().Str("validator", bp.Raw).Str("peer", id.String()).Int("attempts", failures+1).Msg("Connected to validator")
			case failures > 0:
				c.log.Info().Str("validator", bp.Raw).Str("peer", id.String()).Msg("Reconnected to validator")
			}
			connected = true
			failures = 0
			delay = minRedial
		}
		wait := delay
		if err == nil {
			wait = 5 * time.Second // check the connection now and then; a drop kicks us sooner
		} else {
			delay = min(delay*2, maxRedial)
		}
		wait = wait/2 + rand.N(wait/2+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-c.kicks[i]:
			t.Stop()
			if err != nil {
				// Still failing: keep to the backoff, but not past it.
				select {
				case <-ctx.Done():
					return
				case <-time.After(minRedial):
				}
			}
		case <-t.C:
		}
	}
}

func (c *Connector) connect(ctx context.Context, i int) (peer.ID, error) {
	bp := c.peers[i]
	c.mu.Lock()
	id := c.ids[i]
	c.mu.Unlock()
	if id != "" && c.h.Network().Connectedness(id) == network.Connected {
		return id, nil
	}
	if bp.ID != "" {
		id = bp.ID
	} else {
		learned, err := ProbePeerID(ctx, c.h.Peerstore().PrivKey(c.h.ID()), bp.HostPort)
		if err != nil {
			return "", err
		}
		if learned != id {
			c.log.Warn().Str("validator", bp.Raw).Str("peer", learned.String()).
				Msg("Learned validator peer id on first contact (trust on first use); pin it with the full multiaddr " +
					bp.Addr.String() + "/p2p/" + learned.String())
		}
		id = learned
	}
	c.mu.Lock()
	c.ids[i] = id
	c.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c.h.Peerstore().AddAddr(id, bp.Addr, peerstore.PermanentAddrTTL)
	ClearDialBackoff(c.h, id)
	if err := c.h.Connect(dctx, peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{bp.Addr}}); err != nil {
		return "", err
	}
	c.h.ConnManager().Protect(id, "lloom-bootstrap")
	return id, nil
}

// ClearDialBackoff forgets the swarm's dial backoff for p. Callers that
// pace their own retries use it: the swarm's backoff would add up to
// minutes after a validator restart, and hide the real dial error behind
// "dial backoff".
func ClearDialBackoff(h host.Host, p peer.ID) {
	if sw, ok := h.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(p)
	}
}
