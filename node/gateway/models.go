package gateway

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/protocol/pb"
)

// modelCache keeps the network's model list fresh in the background, so
// that GET /v1/models never waits for the validators.
type modelCache struct {
	c          *client.Client
	filters    *pb.QueryFilters
	every      time.Duration
	log        zerolog.Logger
	loaded     chan struct{} // closed after the first refresh, failed or not
	loadedOnce sync.Once
	// running is set while run keeps the list fresh; without it (a program
	// serving Handler without Run), list refreshes when the copy is older
	// than every.
	running atomic.Bool

	mu     sync.Mutex
	models []modelJSON // guarded by mu
	at     time.Time   // guarded by mu: last successful refresh
	tried  time.Time   // guarded by mu: last refresh, failed or not
	err    error       // guarded by mu: last refresh's failure
}

func newModelCache(c *client.Client, filters *pb.QueryFilters, every time.Duration, log zerolog.Logger) *modelCache {
	return &modelCache{c: c, filters: filters, every: every, log: log, loaded: make(chan struct{})}
}

// modelJSON is one entry of OpenAI's model list, with lloom's counts.
type modelJSON struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	OwnedBy string        `json:"owned_by"`
	Lloom   modelCountsJS `json:"lloom"`
}

type modelCountsJS struct {
	Executors  int `json:"executors"`
	Healthy    int `json:"healthy"`
	Overloaded int `json:"overloaded"`
}

// feedSettle is how long the cache lets a burst of changes settle before
// it reads the list again; it bounds the refreshes the feed can cause.
const feedSettle = 250 * time.Millisecond

// run keeps the list fresh: a validator's change feed (executors added,
// removed, stale, recovered, re-announced) asks for a refresh within
// feedSettle, and the list is read every m.every anyway, for load changes
// and in case the feed is down (a validator without one is polled only).
func (m *modelCache) run(ctx context.Context) {
	m.running.Store(true)
	defer m.running.Store(false)
	changed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() {
		err := m.c.Watch(ctx, client.WatchOptions{}, func(_ int, ev *pb.WatchEvent) error {
			switch ev.GetKind() {
			case pb.WatchEventKind_WATCH_EVENT_KIND_SYNCED, // (re)connected: the view may have moved
				pb.WatchEventKind_WATCH_EVENT_KIND_ADDED, pb.WatchEventKind_WATCH_EVENT_KIND_UPDATED,
				pb.WatchEventKind_WATCH_EVENT_KIND_STALE, pb.WatchEventKind_WATCH_EVENT_KIND_RECOVERED,
				pb.WatchEventKind_WATCH_EVENT_KIND_REMOVED:
				select {
				case changed <- struct{}{}:
				default:
				}
			}
			return nil
		})
		if err != nil && ctx.Err() == nil {
			m.log.Info().Err(err).Msg("No change feed; the model list is read every few seconds only")
		}
	})
	t := time.NewTimer(m.every)
	defer t.Stop()
	for {
		m.refresh(ctx)
		// A failed read (no validator yet) is tried again soon, not a
		// whole period later.
		next := m.every
		if m.failing() {
			next = min(m.every, failedRetry)
		}
		t.Reset(next)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-changed:
			if !sleepCtx(ctx, feedSettle) {
				return
			}
			select { // changes during the pause are covered by this refresh
			case <-changed:
			default:
			}
		}
	}
}

// failedRetry is how soon a failed read of the list is tried again.
const failedRetry = 500 * time.Millisecond

// failing reports whether the last read of the list failed.
func (m *modelCache) failing() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err != nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (m *modelCache) refresh(ctx context.Context) {
	defer m.loadedOnce.Do(func() { close(m.loaded) })
	// Summaries, not executors: one cheap query however large the network.
	// Stale and unavailable executors are left out, so the counts are of
	// executors a request can use.
	f := proto.Clone(m.filters).(*pb.QueryFilters)
	f.IncludeStale, f.IncludeUnavailable = false, false
	res, err := m.c.ListModels(ctx, f)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tried = time.Now()
	if err != nil {
		if ctx.Err() == nil && m.err == nil {
			m.log.Warn().Err(err).Msg("Model list not refreshed; serving the last one")
		}
		m.err = err
		return
	}
	if m.err != nil {
		m.log.Info().Msg("Model list refreshed again")
	}
	m.err, m.at = nil, time.Now()
	// created is when this gateway first listed the model.
	created := make(map[string]int64, len(m.models))
	for _, e := range m.models {
		created[e.ID] = e.Created
	}
	m.models = m.models[:0]
	for _, s := range res.Models {
		e := modelJSON{ID: s.ID, Object: "model", OwnedBy: "lloom", Created: created[s.ID]}
		if e.Created == 0 {
			e.Created = m.at.Unix()
		}
		e.Lloom.Healthy, e.Lloom.Overloaded = s.Healthy, s.Overloaded
		e.Lloom.Executors = s.Healthy + s.Overloaded
		if e.Lloom.Executors > 0 {
			m.models = append(m.models, e)
		}
	}
}

// list waits for the first refresh (bounded by ctx), then returns the copy.
func (m *modelCache) list(ctx context.Context) ([]modelJSON, error) {
	if !m.running.Load() {
		m.mu.Lock()
		old := time.Since(m.tried) >= m.every
		m.mu.Unlock()
		if old {
			m.refresh(ctx)
		}
	}
	select {
	case <-m.loaded:
	case <-ctx.Done():
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.at.IsZero() && m.err != nil {
		return nil, m.err
	}
	return append([]modelJSON(nil), m.models...), nil
}

func (g *Gateway) listModels(w http.ResponseWriter, r *http.Request) {
	ms, err := g.models.list(r.Context())
	if err != nil {
		writeError(w, http.StatusBadGateway, "api_error", "validators_unreachable", "no validator answered: "+err.Error())
		return
	}
	if ms == nil {
		ms = []modelJSON{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": ms})
}

func (g *Gateway) getModel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("model")
	ms, err := g.models.list(r.Context())
	if err != nil {
		writeError(w, http.StatusBadGateway, "api_error", "validators_unreachable", "no validator answered: "+err.Error())
		return
	}
	for _, m := range ms {
		if m.ID == id {
			writeJSON(w, http.StatusOK, m)
			return
		}
	}
	writeError(w, http.StatusNotFound, "invalid_request_error", "model_not_found", "The model `"+id+"` does not exist or no executor serves it now")
}
