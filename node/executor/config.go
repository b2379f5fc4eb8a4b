package executor

import (
	"fmt"
	"time"

	"github.com/lloom/lloom/node"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// Config configures an executor.
type Config struct {
	// Network, Key (whose peer id is the executor id), Listen (announced
	// so that clients can dial the executor), logging and test hooks.
	node.Config
	// Validators to bootstrap from and stay connected to.
	Validators []node.BootstrapPeer
	// Models served at start.
	Models []*pb.ModelDescriptor
	// HeartbeatInterval between heartbeats (jittered by ±10%).
	HeartbeatInterval time.Duration
	// AnnounceModels false keeps the executor silent: no announcements, no
	// heartbeats.
	AnnounceModels bool
	// EVMAddress is announced for payments (optional).
	EVMAddress string
	// MaxMessageAge is how old a relayed message may be (the validators'
	// removal timeout).
	MaxMessageAge time.Duration
	// RemovalTimeout bounds the wait for the REMOVAL to leave on shutdown.
	RemovalTimeout time.Duration
}

// DefaultConfig returns the defaults; Key must still be set.
func DefaultConfig() Config {
	return Config{
		Config:            node.DefaultConfig(),
		HeartbeatInterval: 10 * time.Second,
		AnnounceModels:    true,
		MaxMessageAge:     2 * time.Minute,
		RemovalTimeout:    3 * time.Second,
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return fmt.Errorf("executor: %w", err)
	}
	if c.HeartbeatInterval < 100*time.Millisecond {
		return fmt.Errorf("heartbeat interval %s is below 100ms", c.HeartbeatInterval)
	}
	if c.MaxMessageAge <= 0 {
		return fmt.Errorf("max message age %s must be positive", c.MaxMessageAge)
	}
	if len(c.Models) > lp.MaxModels {
		return fmt.Errorf("%d models exceed the limit of %d", len(c.Models), lp.MaxModels)
	}
	for _, m := range c.Models {
		if err := lp.CheckModelDescriptor(m); err != nil {
			return fmt.Errorf("model %q: %w", m.GetModelId(), err)
		}
	}
	return nil
}
