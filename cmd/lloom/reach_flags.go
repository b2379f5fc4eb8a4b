package main

import (
	"github.com/spf13/pflag"

	"github.com/lloom/lloom/node"
)

// reachFlags are the reachability flags (DESIGN §11, docs/OPERATIONS.md):
// relay limits on validators, --public-addr on executors, DHT and mDNS
// on both.
type reachFlags struct {
	publicAddrs []string
	noDHT       bool
}

// registerValidator adds the validator's relay service and discovery
// flags, bound to c's defaults.
func (r *reachFlags) registerValidator(fs *pflag.FlagSet, c *node.Config) {
	l := &c.Reach.RelayLimits
	fs.BoolVar(&c.Reach.RelayService, "relay-service", c.Reach.RelayService, "offer circuit relay v2 to executors behind NAT (reservations and relayed connections within the limits below)")
	fs.IntVar(&l.MaxReservations, "relay-max-reservations", l.MaxReservations, "relay: executors that may hold a slot at once")
	fs.IntVar(&l.MaxCircuits, "relay-max-circuits", l.MaxCircuits, "relay: relayed connections open at once per peer")
	fs.IntVar(&l.MaxReservationsPerIP, "relay-max-reservations-per-ip", l.MaxReservationsPerIP, "relay: slots behind one IP address (one NAT)")
	fs.Int64Var(&l.Data, "relay-limit-data", l.Data, "relay: bytes one relayed connection carries per direction before the relay resets it (an answer cut there fails after its first chunk)")
	durationVar(fs, &l.Duration, "relay-limit-duration", l.Duration, "relay: lifetime of one relayed connection before the relay resets it")
	r.registerDiscovery(fs, c)
}

// registerExecutor adds --public-addr and the discovery flags.
func (r *reachFlags) registerExecutor(fs *pflag.FlagSet, c *node.Config) {
	fs.StringArrayVar(&r.publicAddrs, "public-addr", nil, "announce this multiaddr instead of the detected ones (repeatable; for a forwarded port), e.g. /ip4/203.0.113.7/udp/4001/quic-v1; no relay slots are reserved then")
	r.registerDiscovery(fs, c)
}

func (r *reachFlags) registerDiscovery(fs *pflag.FlagSet, c *node.Config) {
	fs.BoolVar(&c.Discovery.MDNS, "mdns", false, "find lloom nodes on the local network by mDNS (multicast on every interface; off by default)")
	fs.BoolVar(&r.noDHT, "no-dht", false, "do not join the network's DHT (validators are then only those given with --validator)")
}

// apply checks the flags and fills c.
func (r *reachFlags) apply(c *node.Config) error {
	if r.noDHT {
		c.Discovery.DHT = false
	}
	if err := c.Reach.RelayLimits.Validate(); c.Reach.Role == node.ReachValidator && err != nil {
		return usagef("--relay-*: %v", err)
	}
	if len(r.publicAddrs) > 0 {
		addrs, err := node.ParseMultiaddrs(r.publicAddrs)
		if err != nil {
			return usagef("--public-addr: %v", err)
		}
		c.Reach.PublicAddrs = addrs
	}
	return nil
}
