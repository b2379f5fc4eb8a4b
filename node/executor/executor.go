// Package executor is the executor role: it announces the models it serves
// with signed announcements, sends heartbeats with their load, answers
// announcement pulls, and withdraws its announcement on shutdown.
package executor

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/pkg/announcer"
	"github.com/lloom/lloom/pkg/peerlimit"
	"github.com/lloom/lloom/pkg/slots"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// Executor is one executor node. Its model set and load change through
// SetModels, PutModel, RemoveModel and SetLoad at any time; each model
// change is announced as an UPDATE carrying the whole set.
type Executor struct {
	cfg    Config
	h      host.Host
	gossip *node.Gossip
	state  *announcer.State
	conn   *node.Connector

	catalog  *catalog
	limiter  *peerlimit.Limiter
	clients  *node.Watcher // pings the clients of answers in flight
	loadKick chan struct{} // a model crossed into or out of overloaded
	// serveCtx ends when the executor closes: answers in flight end 5000.
	serveCtx    context.Context
	serveCancel context.CancelCauseFunc
	serving     sync.WaitGroup // inference streams being answered
	servingMu   sync.Mutex     // orders serving.Add before Close's Wait
	closing     bool           // guarded by servingMu: no new answer starts
	ovMu        sync.Mutex
	overloaded  map[string]bool // guarded by ovMu: models at capacity
	meters      *meters         // nil: metrics off (metrics.go)

	mu       sync.Mutex
	current  []byte // guarded by mu: envelope of the current announcement
	curSeq   uint64 // guarded by mu
	announce int    // guarded by mu: announcements published

	runOnce   sync.Once
	started   bool // set once by runOnce
	closeOnce sync.Once
	closeErr  error
	// reach.go: discovery of validators, and address changes to announce.
	disc         *node.Discovery
	addrsChanged chan struct{}
	reachDone    chan struct{}
	stop         chan struct{} // closed by Close
	done         chan struct{} // closed when Run returns
}

// New builds the host, joins the topic and serves the pull protocol. It
// starts no loop of its own until Run.
func New(cfg Config) (*Executor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.InferenceStreams = max(cfg.InferenceStreams, cfg.inferenceStreams())
	relays := &node.RelaySource{}
	if cfg.Reach.Role == node.ReachExecutor && cfg.Reach.Relays == nil {
		cfg.Reach.Relays = relays.Source // reach.go: every validator known
	}
	h, err := cfg.NewHost()
	if err != nil {
		return nil, err
	}
	relays.Bind(h)
	e := &Executor{cfg: cfg, h: h, state: announcer.New(h.ID()), stop: make(chan struct{}), done: make(chan struct{}),
		limiter: peerlimit.New(cfg.InferenceRate, int(2*cfg.InferenceRate), 0), loadKick: make(chan struct{}, 1), overloaded: map[string]bool{}}
	if cfg.SeqFile != "" {
		if err := e.state.Persist(announcer.SeqFile(cfg.SeqFile), seqReserve); err != nil {
			h.Close()
			return nil, err
		}
	}
	e.serveCtx, e.serveCancel = context.WithCancelCause(context.Background())
	e.cfg.Logger = cfg.Logger.With().Str("role", "executor").Str("peer", h.ID().String()).Logger()
	e.catalog, err = newCatalog(&e.cfg, e.loadChanged, e.state.SetModels)
	if err != nil {
		h.Close()
		return nil, err
	}
	if e.meters, err = newMeters(cfg.Metrics, e.catalog); err != nil {
		h.Close()
		return nil, err
	}
	// Every node runs the topic validator; an executor checks what it
	// relays statelessly (it keeps no registry).
	e.gossip, err = node.NewGossip(h, node.GossipConfig{
		Network: cfg.Network,
		Validate: func(_ context.Context, _ peer.ID, p node.GossipPayload) error {
			return node.CheckPayload(p, time.Now(), cfg.MaxMessageAge)
		},
		Options: cfg.GossipOptions,
	}, e.cfg.Logger)
	if err != nil {
		h.Close()
		return nil, err
	}
	e.conn = node.NewConnector(h, cfg.Validators, e.cfg.Logger)
	if err := e.startReach(); err != nil {
		e.gossip.Close()
		h.Close()
		return nil, err
	}
	e.clients = node.NewWatcher(h, node.PingInterval, node.PingTimeout)
	node.Serve(h, lp.AnnouncementProtocol, 16, node.DefaultStreamTimeout, e.servePull)
	h.SetStreamHandler(lp.InferenceProtocol, e.serveInference)
	return e, nil
}

// ID is the executor's peer id.
func (e *Executor) ID() peer.ID { return e.h.ID() }

// Host is the executor's libp2p host.
func (e *Executor) Host() host.Host { return e.h }

// Addrs are the executor's full multiaddrs.
func (e *Executor) Addrs() []string { return node.FullAddrs(e.h) }

// SetModels replaces the whole model set, keeping the serving settings.
func (e *Executor) SetModels(models []*pb.ModelDescriptor) error {
	return e.catalog.set(models, e.catalog.servingSettings())
}

// Configure replaces the whole model set and its serving settings.
func (e *Executor) Configure(models []*pb.ModelDescriptor, serving map[string]ModelServing) error {
	return e.catalog.set(models, serving)
}

// PutModel adds a model or replaces its descriptor.
func (e *Executor) PutModel(m *pb.ModelDescriptor) error { return e.catalog.put(m) }

// RemoveModel stops serving a model.
func (e *Executor) RemoveModel(id string) error { return e.catalog.remove(id) }

// Load returns each model's requests running and waiting now.
func (e *Executor) Load() map[string]slots.Load { return e.catalog.loads() }

// loadChanged reports a model's new load in the next heartbeat, and asks
// for an early one when the model crossed into or out of overloaded.
func (e *Executor) loadChanged(model string, l slots.Load) {
	_ = e.state.SetLoad(model, l.Active, l.Queued, l.Capacity)
	e.ovMu.Lock()
	crossed := e.overloaded[model] != l.Overloaded()
	if l.Overloaded() {
		e.overloaded[model] = true
	} else {
		delete(e.overloaded, model)
	}
	e.ovMu.Unlock()
	if crossed {
		select {
		case e.loadKick <- struct{}{}:
		default:
		}
	}
}

// SetLoad records a model's active and queued requests; capacity 0 keeps
// the announced capacity. It goes out with the next heartbeat.
func (e *Executor) SetLoad(model string, active, queued, capacity uint32) error {
	return e.state.SetLoad(model, active, queued, capacity)
}

// Models returns the current model set.
func (e *Executor) Models() []*pb.ModelDescriptor { return e.state.Models() }

// Model returns one model's descriptor.
func (e *Executor) Model(id string) (*pb.ModelDescriptor, bool) { return e.state.Model(id) }

// AnnouncementSeq is the seq of the last announcement published (0 before
// the first).
func (e *Executor) AnnouncementSeq() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.curSeq
}

// Heartbeat publishes a heartbeat now, outside the periodic schedule, so
// that a load change is visible at once.
func (e *Executor) Heartbeat(ctx context.Context) error {
	return e.heartbeat(ctx)
}

// Close stops the executor: a running Run publishes the REMOVAL and
// returns first. It is idempotent.
func (e *Executor) Close() error {
	e.closeOnce.Do(func() {
		// Answers in flight end with 5000 while the host still runs.
		e.servingMu.Lock()
		e.closing = true
		e.servingMu.Unlock()
		e.serveCancel(errShutdown)
		waitGroup(&e.serving, shutdownGrace)
		close(e.stop)
		e.runOnce.Do(func() {}) // a later Run refuses to start
		if e.started {
			<-e.done
		}
		// The numbers really used, so that a clean restart continues from
		// the clock rather than from the last reservation.
		seqErr := e.state.Close()
		if seqErr != nil {
			e.cfg.Logger.Warn().Err(seqErr).Msg("Sequence numbers not stored; the next start continues above the last reservation")
		}
		e.stopReach()
		e.gossip.Close()
		e.closeErr = errors.Join(seqErr, e.h.Close())
	})
	return e.closeErr
}

func (e *Executor) servePull(_ context.Context, from peer.ID, req []byte, readErr error) ([]byte, error) {
	if readErr != nil || len(req) != 0 {
		return nil, errors.New("bad pull request")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cfg.Logger.Debug().Str("from", from.String()).Msg("Announcement pulled")
	return e.current, nil
}

// shutdownGrace bounds the wait for answers in flight to end on Close.
const shutdownGrace = 2 * time.Second

// startServing counts one more answer in flight, unless the executor is
// closing: an Add racing with Close's Wait is a misuse of the WaitGroup.
func (e *Executor) startServing() bool {
	e.servingMu.Lock()
	defer e.servingMu.Unlock()
	if e.closing {
		return false
	}
	e.serving.Add(1)
	return true
}

func waitGroup(wg *sync.WaitGroup, limit time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
	}
}
