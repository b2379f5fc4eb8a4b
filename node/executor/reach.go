package executor

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/lloom/lloom/node"
)

// addrSettle lets a burst of address changes (a reservation on each
// validator, one after another) end in one UPDATE.
const addrSettle = 500 * time.Millisecond

// startReach starts the DHT and mDNS discovery and the goroutine that
// logs reachability and asks for a new announcement when the executor's
// addresses change (a relay slot reserved or lost, a public address
// confirmed): the announcement carries the addresses clients dial.
func (e *Executor) startReach() error {
	e.addrsChanged = make(chan struct{}, 1)
	e.reachDone = make(chan struct{})
	dc := e.cfg.Discovery
	dc.Bootstrap, dc.Server = e.cfg.Validators, false
	dc.Found = func(ai peer.AddrInfo) {
		// A validator found later: connect, so that it gets our
		// announcements and autorelay may reserve a slot on it.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.h.Connect(ctx, ai); err != nil {
			e.cfg.Logger.Debug().Err(err).Str("validator", ai.ID.String()).Msg("Found validator not reached")
		}
	}
	d, err := node.StartDiscovery(e.h, e.cfg.Network, dc, e.cfg.Logger)
	if err != nil {
		return err
	}
	e.disc = d
	sub, err := e.h.EventBus().Subscribe([]any{new(event.EvtLocalAddressesUpdated), new(event.EvtLocalReachabilityChanged)}, eventbus.Name("lloom executor reach"))
	if err != nil {
		d.Close()
		return err
	}
	go func() {
		defer close(e.reachDone)
		defer sub.Close()
		settle := time.NewTimer(time.Hour)
		settle.Stop()
		defer settle.Stop()
		log := e.cfg.Logger
		lastKey := publicKey(e.h.Addrs())
		for {
			select {
			case <-e.stop:
				return
			case <-settle.C:
				// Only addresses a remote client can use are worth an
				// UPDATE (loopback and LAN relays change nothing for them).
				key := publicKey(e.h.Addrs())
				if key == lastKey {
					continue
				}
				lastKey = key
				relayed, direct := splitAddrs(e.h.Addrs())
				log.Info().Strs("relayed", relayed).Strs("direct", direct).Msg("Executor addresses changed; announcing them")
				select {
				case e.addrsChanged <- struct{}{}:
				default:
				}
			case ev, ok := <-sub.Out():
				if !ok {
					return
				}
				switch ev := ev.(type) {
				case event.EvtLocalReachabilityChanged:
					log.Info().Str("reachability", ev.Reachability.String()).
						Bool("public_addr_override", len(e.cfg.Reach.PublicAddrs) > 0).
						Msg(reachabilityLine(ev.Reachability))
				case event.EvtLocalAddressesUpdated:
					if ev.Diffs {
						settle.Reset(addrSettle)
					}
				}
			}
		}
	}()
	return nil
}

func reachabilityLine(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return "Reachability: public (clients dial this executor directly)"
	case network.ReachabilityPrivate:
		return "Reachability: private (behind NAT); reserving relay slots on the validators"
	default:
		return "Reachability: unknown; treated as private until a public address is confirmed"
	}
}

// splitAddrs separates relayed (/p2p-circuit) addresses from direct ones.
func splitAddrs(addrs []ma.Multiaddr) (relayed, direct []string) {
	for _, a := range addrs {
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			relayed = append(relayed, a.String())
		} else {
			direct = append(direct, a.String())
		}
	}
	return relayed, direct
}

// Reachability describes the executor's addresses for stats and logs.
func (e *Executor) Reachability() (relayed, direct []string) { return splitAddrs(e.h.Addrs()) }

// announced is how many announcements were published.
func (e *Executor) announced() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.announce
}

// stopReach stops discovery and the address watcher (after e.stop closed).
func (e *Executor) stopReach() {
	if e.reachDone != nil {
		<-e.reachDone
	}
	e.disc.Close()
}

// reachDefaults: an executor learns its reachability, reserves relay slots
// while private, and finds validators through the DHT.
func reachDefaults(c node.Config) node.Config {
	c.Reach = node.Reach{Role: node.ReachExecutor}
	c.Discovery = node.DiscoveryConfig{DHT: true}
	return c
}

// publicKey is the sorted list of the public addresses among addrs
// (a relayed address counts by its relay's).
func publicKey(addrs []ma.Multiaddr) string {
	var out []string
	for _, a := range addrs {
		if manet.IsPublicAddr(a) {
			out = append(out, a.String())
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}
