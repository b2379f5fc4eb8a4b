package validator

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/protocol/pb"
)

// reachDefaults: a validator is public by configuration, runs the relay
// service with explicit limits and serves the network's DHT (DESIGN §11).
func reachDefaults(c node.Config) node.Config {
	c.Reach = node.Reach{Role: node.ReachValidator, RelayService: true, RelayLimits: node.DefaultRelayLimits()}
	c.Discovery = node.DiscoveryConfig{DHT: true}
	return c
}

// validatorTag protects the connections to other validators from the
// connection manager's trimming.
const validatorTag = "lloom-validator"

// startDiscovery runs the DHT as a server bootstrapped from the peers the
// operator gave, and connects to every validator it or mDNS finds, so that
// one bootstrap address joins a validator to all the others.
func (v *Validator) startDiscovery() (*node.Discovery, error) {
	dc := v.cfg.Discovery
	dc.Bootstrap, dc.Server = v.cfg.Peers, true
	dc.Found = func(ai peer.AddrInfo) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := v.h.Connect(ctx, ai); err != nil {
			v.log.Debug().Err(err).Str("validator", ai.ID.String()).Msg("Found validator not reached")
			return
		}
		v.h.ConnManager().Protect(ai.ID, validatorTag)
	}
	v.log.Info().Bool("relay_service", v.cfg.Reach.RelayService).Bool("dht", dc.DHT).Bool("mdns", dc.MDNS).
		Int64("relay_data_limit", v.cfg.Reach.RelayLimits.Data).Str("relay_duration_limit", v.cfg.Reach.RelayLimits.Duration.String()).
		Int("relay_max_reservations", v.cfg.Reach.RelayLimits.MaxReservations).Msg("Reachability services")
	return node.StartDiscovery(v.h, v.cfg.Network, dc, v.log)
}

// fillRelay puts the relay service's figures into st.
func (v *Validator) fillRelay(st *pb.Statistics) {
	f := v.relay.Figures()
	st.RelayReservations = uint64(max(f.Reservations, 0))
	st.RelayCircuits = uint64(max(f.Circuits, 0))
	st.RelayReservationsTotal = f.ReservationsTotal
	st.RelayCircuitsTotal = f.CircuitsTotal
	st.RelayRefused = f.ReservationsRefused + f.CircuitsRefused
	st.RelayBytes = f.Bytes
}
