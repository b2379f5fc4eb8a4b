package node

import (
	"fmt"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	lp "github.com/lloom/lloom/protocol"
)

// Config is what every listening role's configuration shares; the roles
// embed it.
type Config struct {
	// Network selects the topic; nodes of other networks are ignored.
	Network string
	// Key is the node's identity.
	Key crypto.PrivKey
	// Listen addresses; none means the node only dials.
	Listen []ma.Multiaddr
	// AgentVersion is announced over Identify.
	AgentVersion string
	Logger       zerolog.Logger
	// Gater, if set, filters connections (tests cut links with it).
	Gater connmgr.ConnectionGater
	// GossipOptions are extra GossipSub options (tests, inspection).
	GossipOptions []pubsub.Option
	// InferenceStreams is how many inference streams one peer may hold
	// open at once (executors: at least their capacity plus queue).
	InferenceStreams int
	// Conns sizes the connections kept and admitted (zero: the defaults of
	// executors and clients; a validator derives its own from its
	// registry's size).
	Conns Connections
	// Reach is the host's reachability setup (relay, AutoNAT, hole
	// punching; reach.go).
	Reach Reach
	// Discovery finds validators beyond the bootstrap ones (DHT, mDNS;
	// discover.go). Roles fill in Bootstrap and Server themselves.
	Discovery DiscoveryConfig
	// Metrics is the node's Prometheus registry: the role's metrics and
	// go-libp2p's are registered there. nil turns metrics off.
	Metrics prometheus.Registerer
}

// DefaultConfig returns the shared defaults; Key must still be set.
func DefaultConfig() Config {
	return Config{Network: lp.DefaultNetwork, AgentVersion: "lloom", Logger: zerolog.Nop()}
}

// Validate reports the first shared setting that cannot work.
func (c Config) Validate() error {
	if err := lp.CheckNetworkName(c.Network); err != nil {
		return err
	}
	if c.Key == nil {
		return fmt.Errorf("no identity key")
	}
	return nil
}

// NewHost builds the host these settings describe.
func (c Config) NewHost() (host.Host, error) {
	return NewHost(HostConfig{Key: c.Key, Listen: c.Listen, UserAgent: c.AgentVersion, Gater: c.Gater, InferenceStreams: c.InferenceStreams, Conns: c.Conns, Reach: c.Reach, Metrics: c.Metrics})
}
