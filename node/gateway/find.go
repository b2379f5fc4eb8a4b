package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/protocol/pb"
)

// findTTL is how long one find-model answer serves the requests for its
// model. The validators see load through heartbeats (a second or more
// apart, sooner only when an executor turns overloaded), so this adds
// little staleness; a failure moves on to the next candidate anyway.
const findTTL = 250 * time.Millisecond

// maxFindEntries bounds the answers kept: past it the expired ones go,
// and while none has expired a request queries alone.
const maxFindEntries = 1024

// finder shares find-model queries between requests. A gateway is one
// peer to each validator, which serves it a few query streams at once and
// about a hundred queries a second: one query per request would fail
// past eight requests in flight, and past a hundred a second. Requests
// for a model that arrive together share one query, and its answer serves
// for findTTL.
type finder struct {
	c *client.Client

	mu      sync.Mutex
	entries map[string]*findEntry // guarded by mu: by model id
}

type findEntry struct {
	done chan struct{} // closed when res and err are set
	res  *client.ModelResult
	err  error
	at   time.Time // when the answer came
}

func newFinder(c *client.Client) *finder {
	return &finder{c: c, entries: map[string]*findEntry{}}
}

// find returns the executors serving model: the answer of a query in
// flight or a fresh one if there is one, else of a new query made here.
// That query outlives a caller that gives up, since others may be waiting
// for it; the client's timeout bounds it.
func (f *finder) find(ctx context.Context, model string, filters *pb.QueryFilters) (*client.ModelResult, error) {
	now := time.Now()
	f.mu.Lock()
	e := f.entries[model]
	if e != nil {
		select {
		case <-e.done:
			if e.err != nil || now.Sub(e.at) > findTTL {
				e = nil
			}
		default: // in flight
		}
	}
	ask := e == nil
	if ask {
		if len(f.entries) >= maxFindEntries {
			f.sweepLocked(now)
		}
		e = &findEntry{done: make(chan struct{})}
		// Past the bound (a flood of distinct model ids), the query is
		// made but not shared.
		if len(f.entries) < maxFindEntries {
			f.entries[model] = e
		}
	}
	f.mu.Unlock()
	if ask {
		e.res, e.err = f.c.FindCandidates(context.WithoutCancel(ctx), model, filters)
		e.at = time.Now()
		close(e.done)
		return e.res, e.err
	}
	select {
	case <-e.done:
		return e.res, e.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// sweepLocked drops the answers past their time.
func (f *finder) sweepLocked(now time.Time) {
	for id, e := range f.entries {
		select {
		case <-e.done:
			if e.err != nil || now.Sub(e.at) > findTTL {
				delete(f.entries, id)
			}
		default:
		}
	}
}

// infer is client.Infer with the candidates from the finder.
func (g *Gateway) infer(ctx context.Context, req client.Request, onText func(string) error) (*client.Answer, error) {
	return g.client.InferVia(ctx, g.finder.find, req, onText)
}
