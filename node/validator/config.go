package validator

import (
	"fmt"
	"time"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/pkg/registry"
)

// Config configures a validator.
type Config struct {
	// Network, Key, Listen, logging and test hooks.
	node.Config
	// Peers are other validators to stay connected to, so that validators
	// form one mesh.
	Peers []node.BootstrapPeer
	// Subscribe false runs the validator without the announcement topic:
	// it answers queries from an empty registry.
	Subscribe bool
	// Registry holds the health timeouts and the registry size limit.
	Registry registry.Config
	// QueryRate is the query budget per peer, in query units per second
	// (burst twice that): a small query costs one unit, a large one more,
	// by its work (see queryCost). 0 turns the limit off.
	QueryRate int
	// QueryTimeout bounds reading a query and answering it.
	QueryTimeout time.Duration
	// PullTimeout bounds one announcement pull.
	PullTimeout time.Duration
	// SweepInterval is how often health is re-evaluated.
	SweepInterval time.Duration
	// AddrFile, if set, receives the full multiaddrs, one per line.
	AddrFile string
	// HTTPListen, if set, is the host:port of the read-only HTTP API and
	// dashboard (http.go); empty turns them off.
	HTTPListen string
	// WatchSubscribers caps the change feed's subscribers at once, over
	// /lloom/watch/1.0.0 and the HTTP event stream together; 0 is
	// DefaultWatchSubscribers.
	WatchSubscribers int
	// EventKeepAlive is how often the HTTP event stream sends a ":"
	// comment when idle, so that proxies keep it open; 0 is
	// DefaultEventKeepAlive (tests shorten it).
	EventKeepAlive time.Duration
	// Now is the clock (tests inject their own).
	Now func() time.Time
}

// DefaultConfig returns the defaults; Key must still be set.
func DefaultConfig() Config {
	return Config{
		Config:        reachDefaults(node.DefaultConfig()),
		Subscribe:     true,
		Registry:      registry.DefaultConfig(),
		QueryRate:     100,
		QueryTimeout:  5 * time.Second,
		PullTimeout:   5 * time.Second,
		SweepInterval: time.Second,
		Now:           time.Now,

		WatchSubscribers: DefaultWatchSubscribers,
	}
}

// connections sizes the host for the registry: Conns if set, else room
// for MaxExecutors executors, each on its own connection, and headroom
// for clients and other validators (node.ValidatorConnections).
func (c Config) connections() node.Connections {
	if c.Conns != (node.Connections{}) {
		return c.Conns
	}
	return node.ValidatorConnections(c.Registry.MaxExecutors, c.Registry.MaxPerIP)
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return fmt.Errorf("validator: %w", err)
	}
	if err := c.Registry.Validate(); err != nil {
		return err
	}
	if c.QueryRate < 0 {
		return fmt.Errorf("query rate %d must be 0 (off) or positive", c.QueryRate)
	}
	if c.QueryTimeout <= 0 || c.PullTimeout <= 0 || c.SweepInterval <= 0 {
		return fmt.Errorf("query timeout, pull timeout and sweep interval must be positive")
	}
	if c.Now == nil {
		return fmt.Errorf("validator: no clock")
	}
	if err := c.validateFeed(); err != nil {
		return err
	}
	return nil
}
