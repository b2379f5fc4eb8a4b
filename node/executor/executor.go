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

	mu       sync.Mutex
	current  []byte // guarded by mu: envelope of the current announcement
	curSeq   uint64 // guarded by mu
	announce int    // guarded by mu: announcements published

	runOnce   sync.Once
	started   bool // set once by runOnce
	closeOnce sync.Once
	closeErr  error
	stop      chan struct{} // closed by Close
	done      chan struct{} // closed when Run returns
}

// New builds the host, joins the topic and serves the pull protocol. It
// starts no loop of its own until Run.
func New(cfg Config) (*Executor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h, err := cfg.NewHost()
	if err != nil {
		return nil, err
	}
	e := &Executor{cfg: cfg, h: h, state: announcer.New(h.ID()), stop: make(chan struct{}), done: make(chan struct{})}
	e.cfg.Logger = cfg.Logger.With().Str("role", "executor").Str("peer", h.ID().String()).Logger()
	if err := e.state.SetModels(cfg.Models); err != nil {
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
	node.Serve(h, lp.AnnouncementProtocol, 16, node.DefaultStreamTimeout, e.servePull)
	return e, nil
}

// ID is the executor's peer id.
func (e *Executor) ID() peer.ID { return e.h.ID() }

// Host is the executor's libp2p host.
func (e *Executor) Host() host.Host { return e.h }

// Addrs are the executor's full multiaddrs.
func (e *Executor) Addrs() []string { return node.FullAddrs(e.h) }

// SetModels replaces the whole model set.
func (e *Executor) SetModels(models []*pb.ModelDescriptor) error { return e.state.SetModels(models) }

// PutModel adds a model or replaces its descriptor.
func (e *Executor) PutModel(m *pb.ModelDescriptor) error { return e.state.PutModel(m) }

// RemoveModel stops serving a model.
func (e *Executor) RemoveModel(id string) error { return e.state.RemoveModel(id) }

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
		close(e.stop)
		e.runOnce.Do(func() {}) // a later Run refuses to start
		if e.started {
			<-e.done
		}
		e.gossip.Close()
		e.closeErr = e.h.Close()
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
