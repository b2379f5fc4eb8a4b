// Package client is the client role: it asks validators which models exist
// and which executors serve them, verifies every executor's signed
// announcement itself, and merges the validators' answers.
package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/lloom/lloom/node"
	lp "github.com/lloom/lloom/protocol"
)

// ErrNoValidators is returned when no validator answered.
var ErrNoValidators = errors.New("client: no validator answered")

// Config configures a client.
type Config struct {
	Network string
	// Key is the client's identity; nil generates a throwaway one.
	Key crypto.PrivKey
	// Validators to ask; every one is asked and the answers merged.
	Validators []node.BootstrapPeer
	// Timeout bounds reaching the validators and each query.
	Timeout time.Duration
	// Listen addresses; none makes a dial-only host.
	Listen []ma.Multiaddr
	Logger zerolog.Logger
	// PunchWait is how long a request waits for a relayed connection to
	// an executor to become direct (hole punching, DCUtR) before it runs
	// over the relay; 0 turns relaying and hole punching off.
	PunchWait time.Duration
	// Metrics is the Prometheus registry of the client's (or gateway's)
	// metrics and its host's; nil turns metrics off.
	Metrics prometheus.Registerer
}

// DefaultConfig returns the defaults; Validators must still be set.
func DefaultConfig() Config {
	return Config{Network: lp.DefaultNetwork, Timeout: 10 * time.Second, Logger: zerolog.Nop(), PunchWait: DefaultPunchWait}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	if err := lp.CheckNetworkName(c.Network); err != nil {
		return err
	}
	if len(c.Validators) == 0 {
		return errors.New("no validator address: set --validator or VALIDATOR_ADDRESS")
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("timeout %s must be positive", c.Timeout)
	}
	return nil
}

// Client queries validators. It is safe for concurrent use.
type Client struct {
	cfg       Config
	h         host.Host
	log       zerolog.Logger
	executors *node.Watcher // pings the executors of answers in flight
	meters    *meters       // nil: metrics off (metrics.go)

	mu  sync.Mutex
	ids map[int]peer.ID // guarded by mu: learned ids of short-form validators
}

// New builds a dial-only host.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Key == nil {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, err
		}
		cfg.Key = k
	}
	hc := cfg.hostConfig()
	hc.Metrics = cfg.Metrics
	h, err := node.NewHost(hc)
	if err != nil {
		return nil, err
	}
	m, err := newMeters(cfg.Metrics)
	if err != nil {
		h.Close()
		return nil, err
	}
	return &Client{cfg: cfg, h: h, log: cfg.Logger.With().Str("role", "client").Logger(), ids: map[int]peer.ID{},
		executors: node.NewWatcher(h, node.PingInterval, node.PingTimeout), meters: m}, nil
}

// Close closes the client's host.
func (c *Client) Close() error { return c.h.Close() }

// Host is the client's libp2p host.
func (c *Client) Host() host.Host { return c.h }

// ValidatorError is one validator that did not answer.
type ValidatorError struct {
	Validator string
	Err       error
}

func (e ValidatorError) Error() string { return fmt.Sprintf("validator %s: %v", e.Validator, e.Err) }

// resolve returns the peer id of validator i, connecting to it, retrying
// with backoff until ctx ends or giveUp closes (another validator has
// answered, so waiting out a restart is no longer worth the user's time).
// An error that retrying cannot cure within a command's patience (nothing
// listens there, another identity answers) ends it at once.
func (c *Client) resolve(ctx context.Context, i int, giveUp <-chan struct{}) (peer.ID, error) {
	bp := c.cfg.Validators[i]
	delay := 100 * time.Millisecond
	for {
		id, err := c.connect(ctx, i, bp)
		if err == nil {
			return id, nil
		}
		if permanent(err) {
			return "", fmt.Errorf("not reachable: %w", err)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("not reachable: %w", err)
		case <-giveUp:
			return "", fmt.Errorf("not reachable: %w", err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
}

func (c *Client) connect(ctx context.Context, i int, bp node.BootstrapPeer) (peer.ID, error) {
	id := bp.ID
	if id == "" {
		c.mu.Lock()
		id = c.ids[i]
		c.mu.Unlock()
	}
	if id == "" {
		learned, err := node.ProbePeerID(ctx, c.cfg.Key, bp.HostPort)
		if err != nil {
			return "", err
		}
		// Debug, not a warning: a client keeps nothing between runs, so
		// every run with a short address learns it again.
		c.log.Debug().Str("validator", bp.Raw).Str("peer", learned.String()).
			Msg("Learned validator peer id on first contact (trust on first use); pin it with the full multiaddr " +
				bp.Addr.String() + "/p2p/" + learned.String())
		id = learned
		c.mu.Lock()
		c.ids[i] = id
		c.mu.Unlock()
	}
	c.h.Peerstore().AddAddr(id, bp.Addr, peerstore.TempAddrTTL)
	node.ClearDialBackoff(c.h, id)
	if err := c.h.Connect(ctx, peer.AddrInfo{ID: id}); err != nil {
		if bp.ID == "" {
			c.mu.Lock()
			delete(c.ids, i) // it may have restarted with another identity
			c.mu.Unlock()
		}
		return "", err
	}
	return id, nil
}

// clientInferenceStreams lets one client (a gateway) hold this many
// answers from one executor at once.
const clientInferenceStreams = 1024
