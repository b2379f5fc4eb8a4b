package node

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	"github.com/rs/zerolog"
)

// DiscoveryConfig configures how a node finds validators beyond the ones
// it was given (DESIGN §11).
type DiscoveryConfig struct {
	// DHT runs the network's Kademlia DHT (protocol prefix
	// /lloom/<network>), bootstrapped from Bootstrap only: never from
	// go-libp2p's or IPFS's public peers.
	DHT bool
	// Server makes this node a DHT server that advertises itself as a
	// validator (validators); others are DHT clients.
	Server bool
	// MDNS finds validators on the local network by multicast; off by
	// default, since it multicasts on every interface.
	MDNS bool
	// Bootstrap are the validators the operator gave.
	Bootstrap []BootstrapPeer
	// Found, if set, is called once for each validator found by the DHT
	// or mDNS (not for those in Bootstrap), from the discovery goroutine.
	Found func(peer.AddrInfo)
}

// Discovery runs the DHT and mDNS and remembers the validators they found.
type Discovery struct {
	cfg    DiscoveryConfig
	h      host.Host
	log    zerolog.Logger
	ns     string
	kad    *dht.IpfsDHT
	mdns   interface{ Close() error }
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	found map[peer.ID]bool // guarded by mu
}

// findEvery is how often the DHT is asked for validators (jittered); the
// first search comes soon after start.
const findEvery = 30 * time.Second

// DHTPrefix is the DHT's protocol prefix for a network, so that networks
// (and IPFS) never share a routing table.
func DHTPrefix(network string) protocol.ID { return protocol.ID("/lloom/" + network) }

// StartDiscovery starts the DHT and mDNS that cfg asks for; with neither
// it returns an idle Discovery. Close stops it.
func StartDiscovery(h host.Host, network string, cfg DiscoveryConfig, log zerolog.Logger) (*Discovery, error) {
	d := &Discovery{cfg: cfg, h: h, log: log.With().Str("component", "discovery").Logger(),
		ns: "lloom/" + network + "/validators", found: map[peer.ID]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	if cfg.DHT {
		mode := dht.ModeClient
		if cfg.Server {
			mode = dht.ModeServer // public by configuration (DESIGN §11)
		}
		kad, err := dht.New(h, dht.Mode(mode), dht.ProtocolPrefix(DHTPrefix(network)),
			dht.BootstrapPeersFunc(d.bootstrapPeers), dht.DisableValues())
		if err != nil {
			cancel()
			return nil, err
		}
		d.kad = kad
		d.wg.Go(func() { d.runDHT(ctx) })
	}
	if cfg.MDNS {
		m := mdns.NewMdnsService(h, "lloom-"+network, mdnsNotifee(func(ai peer.AddrInfo) { d.foundPeer(ctx, ai, "mdns") }))
		if err := m.Start(); err != nil {
			d.Close()
			return nil, err
		}
		d.mdns = m
		d.log.Info().Msg("mDNS on: announcing and looking for lloom nodes on the local network")
	}
	return d, nil
}

type mdnsNotifee func(peer.AddrInfo)

func (f mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) { f(ai) }

// bootstrapPeers are the operator's validators with a known id, and those
// found since.
func (d *Discovery) bootstrapPeers() []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, b := range d.cfg.Bootstrap {
		if b.ID != "" {
			out = append(out, peer.AddrInfo{ID: b.ID, Addrs: append(d.h.Peerstore().Addrs(b.ID), b.Addr)})
		}
	}
	for _, p := range d.Validators() {
		out = append(out, peer.AddrInfo{ID: p, Addrs: d.h.Peerstore().Addrs(p)})
	}
	return out
}

func (d *Discovery) runDHT(ctx context.Context) {
	rd := drouting.NewRoutingDiscovery(d.kad)
	t := time.NewTimer(time.Second + rand.N(time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(findEvery - findEvery/10 + rand.N(findEvery/5))
		if d.kad.RoutingTable().Size() == 0 {
			if err := d.kad.Bootstrap(ctx); err != nil {
				d.log.Debug().Err(err).Msg("DHT bootstrap")
			}
			continue // give the refresh a moment
		}
		if d.cfg.Server {
			actx, cancel := context.WithTimeout(ctx, 20*time.Second)
			if _, err := rd.Advertise(actx, d.ns); err != nil && ctx.Err() == nil {
				d.log.Debug().Err(err).Msg("DHT advertise")
			}
			cancel()
		}
		fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		ch, err := rd.FindPeers(fctx, d.ns)
		if err == nil {
			for ai := range ch {
				d.foundPeer(ctx, ai, "dht")
			}
		}
		cancel()
		// DHT servers are validators: the routing table lists them too.
		for _, p := range d.kad.RoutingTable().ListPeers() {
			d.foundPeer(ctx, peer.AddrInfo{ID: p, Addrs: d.h.Peerstore().Addrs(p)}, "dht")
		}
	}
}

// foundPeer records a validator that is not ours and not already known.
func (d *Discovery) foundPeer(ctx context.Context, ai peer.AddrInfo, how string) {
	if ai.ID == d.h.ID() || len(ai.Addrs) == 0 && d.h.Network().Connectedness(ai.ID) == 0 {
		return
	}
	for _, b := range d.cfg.Bootstrap {
		if b.ID == ai.ID {
			return
		}
	}
	d.mu.Lock()
	seen := d.found[ai.ID]
	if !seen {
		d.found[ai.ID] = true
	}
	d.mu.Unlock()
	if seen || ctx.Err() != nil {
		return
	}
	d.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.AddressTTL)
	var addrs []string
	for _, a := range ai.Addrs {
		addrs = append(addrs, a.String())
	}
	d.log.Info().Str("via", how).Str("found", ai.ID.String()).Strs("addrs", addrs).Msg("Found a lloom node")
	if d.cfg.Found != nil {
		d.cfg.Found(ai)
	}
}

// Validators are the peers discovery found (bootstrap peers excluded).
func (d *Discovery) Validators() []peer.ID {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]peer.ID, 0, len(d.found))
	for p := range d.found {
		out = append(out, p)
	}
	return out
}

// Close stops discovery and waits for its goroutines; it is idempotent.
func (d *Discovery) Close() error {
	if d == nil {
		return nil
	}
	d.cancel()
	d.wg.Wait()
	var err error
	if d.mdns != nil {
		err = d.mdns.Close()
		d.mdns = nil
	}
	if d.kad != nil {
		err = d.kad.Close()
		d.kad = nil
	}
	return err
}
