// Package validator is the validator role: it checks every message on the
// announcement topic, keeps the registry of executors and their models and
// health, pulls announcements it missed, checks that new executors are live
// and hold their key before clients see them, and answers queries.
//
// accept.go is the one home of the acceptance rules (DESIGN §4 and §10);
// pull.go, fetch.go and relay.go run the pulls and liveness checks those
// rules ask for, in bounded lanes, one per peer. subscription.go, watch.go,
// http.go, http_events.go and dashboard.go serve the registry's change feed
// (/lloom/watch/1.0.0) and the read-only HTTP API and dashboard.
package validator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/pkg/registry"
	lp "github.com/lloom/lloom/protocol"
)

// seenTTL is how long GossipSub remembers message ids. Its default of two
// minutes costs about 350 B per message; a validator does not need it,
// since its registry refuses replays by sequence number (a cheap check
// that runs before the signature's).
const seenTTL = 30 * time.Second

// Validator is one validator node.
type Validator struct {
	cfg     Config
	log     zerolog.Logger
	h       host.Host
	gossip  *node.Gossip
	reg     *registry.Registry
	conn    *node.Connector
	limits  *limiter
	pulls   *puller
	started time.Time

	msgs      messageCounts // counts.go
	pullStats pullCounts    // counts.go
	queries   atomic.Uint64
	refused   queryRefusals // queries answered with an error code, by code
	meters    *meters       // nil: metrics off (metrics.go)

	droppedReported uint64 // the sweep's: pulls dropped when last logged

	feed  *hub         // the change feed's subscribers (subscription.go)
	watch *watchServer // /lloom/watch/1.0.0 (watch.go)
	api   *httpAPI     // nil without HTTPListen (http.go)

	runOnce   sync.Once
	running   bool // set once by runOnce
	closeOnce sync.Once
	closeErr  error
	disc      *node.Discovery  // reach.go
	relay     *node.RelayStats // reach.go; nil without the relay service
	stop      chan struct{}
	done      chan struct{}
}

// New builds the host, the registry and the topic, and serves queries. It
// starts no loop of its own until Run.
func New(cfg Config) (*Validator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Registry.FirstVersion == 0 {
		// Wall-clock time, so that versions keep increasing across restarts.
		cfg.Registry.FirstVersion = uint64(time.Now().UnixNano())
	}
	reg, err := registry.New(cfg.Registry)
	if err != nil {
		return nil, err
	}
	cfg.Conns = cfg.connections()
	if cfg.Reach.RelayService && cfg.Reach.RelayStats == nil {
		cfg.Reach.RelayStats = node.NewRelayStats(cfg.Metrics) // reach.go
	}
	h, err := cfg.NewHost()
	if err != nil {
		return nil, err
	}
	v := &Validator{
		cfg:     cfg,
		log:     cfg.Logger.With().Str("role", "validator").Str("peer", h.ID().String()).Logger(),
		h:       h,
		reg:     reg,
		limits:  newLimiter(cfg.QueryRate),
		started: cfg.Now(),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		meters:  newMeters(cfg.Metrics),
		relay:   cfg.Reach.RelayStats,
	}
	if fds := cfg.Conns.TCPConnLimit(); fds < cfg.Conns.High {
		v.log.Warn().Int("tcp_connections", fds).Int("wanted", cfg.Conns.High).Int("max_executors", cfg.Registry.MaxExecutors).
			Msg("The file descriptor limit (ulimit -n, LimitNOFILE) leaves room for fewer TCP connections than the registry's executors and clients need; raise it (see docs/OPERATIONS.md)")
	}
	v.pulls = newPuller(v)
	v.gossip, err = node.NewGossip(h, node.GossipConfig{
		Network:   cfg.Network,
		Judge:     v.judge,
		AppScore:  v.pulls.relays.score,
		Subscribe: cfg.Subscribe,
		Options:   append([]pubsub.Option{pubsub.WithSeenMessagesTTL(seenTTL)}, cfg.GossipOptions...),
	}, v.log)
	if err != nil {
		v.pulls.close()
		h.Close()
		return nil, err
	}
	v.conn = node.NewConnector(h, cfg.Peers, v.log)
	node.Serve(h, lp.QueryProtocol, lp.MaxRequestSize, cfg.QueryTimeout, v.serveQuery)
	v.startFeed()
	if v.disc, err = v.startDiscovery(); err != nil {
		v.pulls.close()
		v.gossip.Close()
		h.Close()
		return nil, err
	}
	if err := v.registerMetrics(cfg.Metrics); err != nil {
		v.Close()
		return nil, err
	}
	if err := v.listenHTTP(); err != nil {
		v.Close()
		return nil, err
	}
	if cfg.AddrFile != "" {
		if err := writeAddrFile(cfg.AddrFile, v.Addrs()); err != nil {
			v.Close()
			return nil, err
		}
	}
	return v, nil
}

// ID is the validator's peer id.
func (v *Validator) ID() peer.ID { return v.h.ID() }

// Host is the validator's libp2p host.
func (v *Validator) Host() host.Host { return v.h }

// Addrs are the validator's full multiaddrs (with /p2p/).
func (v *Validator) Addrs() []string { return node.FullAddrs(v.h) }

// Dropped reports what GossipSub dropped on this validator's behalf.
func (v *Validator) Dropped() node.Drops { return v.gossip.Tracer.Dropped() }

// Registry is the validator's registry, for inspection.
func (v *Validator) Registry() *registry.Registry { return v.reg }

// Run keeps the validator going until ctx ends or Close is called.
func (v *Validator) Run(ctx context.Context) error {
	v.runOnce.Do(func() { v.running = true })
	if !v.running {
		return errors.New("validator: Run called twice or after Close")
	}
	defer close(v.done)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // runs after cancel below
	defer cancel()
	wg.Go(func() {
		select {
		case <-v.stop:
			cancel()
		case <-ctx.Done():
		}
	})
	wg.Go(func() { v.conn.Run(ctx) })
	v.runFeed(ctx, &wg)
	if v.gossip.Sub != nil {
		wg.Go(func() {
			// Messages are applied in the topic validator; the subscription
			// only keeps us in the mesh, so delivered copies are dropped.
			for {
				if _, err := v.gossip.Sub.Next(ctx); err != nil {
					return
				}
			}
		})
	}
	v.log.Info().Strs("addrs", v.Addrs()).Str("topic", lp.Topic(v.cfg.Network)).
		Bool("subscribed", v.cfg.Subscribe).Msg("Validator started")
	t := time.NewTicker(v.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			v.sweep()
		}
	}
}

// Close stops the validator; it is idempotent and waits for Run.
func (v *Validator) Close() error {
	v.closeOnce.Do(func() {
		close(v.stop)
		v.runOnce.Do(func() {})
		if v.running {
			<-v.done
		}
		v.stopFeed()
		v.pulls.close()
		v.disc.Close()
		v.gossip.Close()
		v.closeErr = v.h.Close()
	})
	return v.closeErr
}

func (v *Validator) sweep() {
	now := v.cfg.Now()
	for _, ev := range v.reg.Sweep(now) {
		l := v.log.Info().Str("executor", ev.Peer.String()).Strs("models", ev.Models).
			Str("last_seen", ev.LastSeen.UTC().Format(time.RFC3339))
		switch ev.Kind {
		case registry.EventStale:
			l.Msg("Executor is stale: no heartbeat within the stale timeout")
		case registry.EventRemoved:
			l.Msg("Executor removed: no heartbeat within the removal timeout")
		}
	}
	// Unverified executors due a check (backoff after a failure); the
	// lanes bound what runs, the registry's backoff what is asked.
	for _, c := range v.reg.DueChecks(now, recheckBatch) {
		v.pulls.check(c.ID, c.Addrs, recheckLane)
	}
	v.limits.forgetIdle(now)
	v.pulls.forget(time.Now()) // pull times are wall-clock, like the rate limit of pulls
	if n := v.pulls.dropped.Load(); n > v.droppedReported && dropLogs.Allow() {
		v.log.Info().Uint64("dropped", n-v.droppedReported).
			Msg("Pulls and liveness checks dropped at their bounds; heartbeats and re-checks ask again")
		v.droppedReported = n
	}
}

// recheckBatch is how many due re-checks one sweep hands out.
const recheckBatch = 256

// dropLogs reports dropped pulls at most every 10 s.
var dropLogs = rate.NewLimiter(rate.Every(10*time.Second), 1)

func writeAddrFile(path string, addrs []string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("addr file %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(addrs, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("addr file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("addr file %s: %w", path, err)
	}
	return nil
}
