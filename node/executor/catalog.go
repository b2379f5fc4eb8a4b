package executor

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/pkg/backend"
	"github.com/lloom/lloom/pkg/slots"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// catalog is what the executor serves: the configured (or discovered)
// models, the backend behind each, which backends answer, and one gate
// per model. The announced set is derived from it: a model whose backend
// is down is announced unavailable, one the backend said it does not know
// is left out until the backend lists it again.
type catalog struct {
	cfg      *Config
	onLoad   func(model string, l slots.Load)
	announce func([]*pb.ModelDescriptor) error

	mu         sync.Mutex
	configured []*pb.ModelDescriptor          // guarded by mu: as configured or discovered
	serving    map[string]ModelServing        // guarded by mu
	clients    map[string]*backend.Client     // guarded by mu: by base URL
	down       map[string]string              // guarded by mu: base URL -> why
	missing    map[string]bool                // guarded by mu: models the backend does not know
	probing    map[string]bool                // guarded by mu: base URLs being asked after a failure
	gates      map[string]*slots.Gate         // guarded by mu
	current    map[string]*pb.ModelDescriptor // guarded by mu: as last announced
}

func newCatalog(cfg *Config, onLoad func(string, slots.Load), announce func([]*pb.ModelDescriptor) error) (*catalog, error) {
	c := &catalog{
		cfg: cfg, onLoad: onLoad, announce: announce,
		serving: cfg.Serving, clients: map[string]*backend.Client{},
		down: map[string]string{}, missing: map[string]bool{}, probing: map[string]bool{},
		gates: map[string]*slots.Gate{}, current: map[string]*pb.ModelDescriptor{},
	}
	if err := c.set(cfg.Models, cfg.Serving); err != nil {
		return nil, err
	}
	return c, nil
}

// servingSettings returns the current serving settings.
func (c *catalog) servingSettings() map[string]ModelServing {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.serving
}

// put adds a model or replaces its descriptor.
func (c *catalog) put(m *pb.ModelDescriptor) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ms := slices.DeleteFunc(cloneAll(c.configured), func(x *pb.ModelDescriptor) bool { return x.GetModelId() == m.GetModelId() })
	prev := c.configured
	c.configured = append(ms, proto.Clone(m).(*pb.ModelDescriptor))
	if err := c.publishLocked(); err != nil {
		c.configured = prev
		return err
	}
	return nil
}

// remove stops serving a model.
func (c *catalog) remove(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.configured)
	ms := slices.DeleteFunc(cloneAll(c.configured), func(x *pb.ModelDescriptor) bool { return x.GetModelId() == id })
	if len(ms) == n {
		return fmt.Errorf("executor: model %q is not served", id)
	}
	prev := c.configured
	c.configured = ms
	if err := c.publishLocked(); err != nil {
		c.configured = prev
		return err
	}
	return nil
}

// route is how a request for one model reaches its backend.
type route struct {
	desc    *pb.ModelDescriptor // as announced when the request came
	client  *backend.Client     // nil: announce-only
	name    string              // the model's name at the backend
	gate    *slots.Gate
	downWhy string // non-empty: the backend does not answer
}

// set replaces the configured models and their serving settings.
func (c *catalog) set(models []*pb.ModelDescriptor, serving map[string]ModelServing) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	urls := []string{c.cfg.Backend.URL}
	for _, m := range models {
		urls = append(urls, c.urlLocked(m.GetModelId(), serving))
	}
	for _, url := range urls {
		if url == "" || c.clients[url] != nil {
			continue
		}
		cl, err := backend.New(url, c.cfg.Backend.APIKey, c.cfg.Backend.HTTPClient)
		if err != nil {
			return err
		}
		c.clients[url] = cl
	}
	prev, prevServing := c.configured, c.serving
	c.configured = cloneAll(models)
	c.serving = serving
	if err := c.publishLocked(); err != nil {
		c.configured, c.serving = prev, prevServing
		return err
	}
	clear(c.missing)
	return nil
}

func (c *catalog) urlLocked(model string, serving map[string]ModelServing) string {
	if u := serving[model].BackendURL; u != "" {
		return u
	}
	return c.cfg.Backend.URL
}

// publishLocked derives the announced set and hands it to the announcer;
// gates follow each model's capacity and queue.
func (c *catalog) publishLocked() error {
	var out []*pb.ModelDescriptor
	cur := map[string]*pb.ModelDescriptor{}
	for _, m := range c.configured {
		id := m.GetModelId()
		if c.missing[id] {
			continue
		}
		d := proto.Clone(m).(*pb.ModelDescriptor)
		if _, down := c.down[c.urlLocked(id, c.serving)]; down {
			d.Available = false
		}
		out = append(out, d)
		cur[id] = d
		capacity, queue := d.GetCapacity(), d.GetCapacity()
		if q := c.serving[id].Queue; q != nil {
			queue = *q
		} else if c.cfg.Discover && c.cfg.DiscoverQueue != nil {
			queue = *c.cfg.DiscoverQueue
		}
		if g := c.gates[id]; g != nil {
			g.Resize(capacity, queue)
		} else {
			c.gates[id] = slots.New(capacity, queue, func(l slots.Load) { c.onLoad(id, l) })
		}
	}
	for id, g := range c.gates {
		if l := g.Load(); cur[id] == nil && l.Active == 0 && l.Queued == 0 {
			delete(c.gates, id) // requests still holding it keep their pointer
		}
	}
	c.current = cur
	return c.announce(out)
}

// route returns how to serve model, or false when it is not announced.
func (c *catalog) route(model string) (route, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.current[model]
	if !ok {
		return route{}, false
	}
	url := c.urlLocked(model, c.serving)
	r := route{desc: d, client: c.clients[url], name: model, gate: c.gates[model], downWhy: c.down[url]}
	if n := c.serving[model].BackendModel; n != "" {
		r.name = n
	}
	return r, true
}

// failed records a backend failure seen while serving model.
func (c *catalog) failed(model string, err *backend.Error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	url := c.urlLocked(model, c.serving)
	switch {
	case err.Kind == backend.KindNotFound:
		if c.missing[model] {
			return
		}
		c.missing[model] = true
		c.cfg.Logger.Warn().Str("model", model).Str("backend", url).Msg("Backend does not know the model; announcing without it until the backend lists it")
	case err.Unavailable:
		if _, ok := c.down[url]; ok || c.probing[url] {
			return
		}
		// One broken answer (a stream cut by the engine) says little
		// about the next: ask the backend first, and take its models
		// off the network only if it does not answer.
		cl := c.clients[url]
		c.probing[url] = true
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		_, perr := cl.Models(ctx)
		cancel()
		c.mu.Lock()
		delete(c.probing, url)
		if _, ok := c.down[url]; ok {
			return
		}
		if perr == nil {
			c.cfg.Logger.Warn().Str("backend", url).Str("model", model).Str("error", err.Message).Msg("Backend failed one request but answers; its models stay available")
			return
		}
		c.down[url] = err.Message
		c.cfg.Logger.Warn().Str("backend", url).Str("error", err.Message).Msg("Backend failed; its models are unavailable until it answers again")
	default:
		return
	}
	if e := c.publishLocked(); e != nil {
		c.cfg.Logger.Warn().Err(e).Msg("Model set not updated")
	}
}

// probe asks every backend for its model list: one that answers is up
// again, one that fails is down; models it lists are no longer missing.
// In discovery mode the listed models become the configured set.
func (c *catalog) probe(ctx context.Context, timeout time.Duration, discover bool) {
	c.mu.Lock()
	clients := make(map[string]*backend.Client, len(c.clients))
	for u, cl := range c.clients {
		clients[u] = cl
	}
	c.mu.Unlock()
	type answer struct {
		models []backend.Model
		err    error
	}
	answers := make(map[string]answer, len(clients))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for u, cl := range clients {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			ms, err := cl.Models(ctx)
			mu.Lock()
			answers[u] = answer{ms, err}
			mu.Unlock()
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := false
	listed := map[string]bool{}
	for u, a := range answers {
		why, wasDown := c.down[u]
		switch {
		case a.err != nil && !wasDown:
			c.down[u] = a.err.Error()
			changed = true
			c.cfg.Logger.Warn().Str("backend", u).Err(a.err).Msg("Backend does not answer; its models are unavailable until it does")
		case a.err == nil && wasDown:
			delete(c.down, u)
			changed = true
			c.cfg.Logger.Info().Str("backend", u).Str("was", why).Msg("Backend answers again; its models are available")
		}
		for _, m := range a.models {
			listed[m.ID] = true
		}
	}
	for id := range c.missing {
		name := id
		if n := c.serving[id].BackendModel; n != "" {
			name = n
		}
		if listed[name] || listed[name+":latest"] {
			delete(c.missing, id)
			changed = true
		}
	}
	if discover && len(answers) > 0 {
		if ms, ok := c.discoveredLocked(answers[c.cfg.Backend.URL].models, answers[c.cfg.Backend.URL].err); ok {
			c.configured = ms
			changed = true
		}
	}
	if changed {
		if err := c.publishLocked(); err != nil {
			c.cfg.Logger.Warn().Err(err).Msg("Model set not updated")
		}
	}
}

// discoveredLocked turns a backend's list into descriptors from the
// template, reporting whether the set of ids changed. A failed listing
// keeps the set (announced unavailable) rather than withdrawing it.
func (c *catalog) discoveredLocked(listed []backend.Model, err error) ([]*pb.ModelDescriptor, bool) {
	if err != nil {
		return nil, false
	}
	var ids []string
	contexts := map[string]uint32{}
	for _, m := range listed {
		if lp.ValidModelID(m.ID) && len(ids) < lp.MaxModels {
			ids = append(ids, m.ID)
			contexts[m.ID] = m.ContextLength
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var have []string
	for _, m := range c.configured {
		have = append(have, m.GetModelId())
	}
	slices.Sort(have)
	if slices.Equal(ids, have) {
		return nil, false
	}
	out := make([]*pb.ModelDescriptor, 0, len(ids))
	for _, id := range ids {
		d := proto.Clone(c.cfg.DiscoverTemplate).(*pb.ModelDescriptor)
		d.ModelId = id
		if n := contexts[id]; n > 0 && d.GetMaxContextLength() == 0 {
			d.MaxContextLength = n // as the backend says (vLLM does)
		}
		out = append(out, d)
	}
	c.cfg.Logger.Info().Strs("models", ids).Str("backend", c.cfg.Backend.URL).Msg("Backend's model list changed")
	return out, true
}

// backendsDown reports whether any backend is down.
func (c *catalog) backendsDown() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.down) > 0
}

// missingAny reports whether any model waits for the backend to list it.
func (c *catalog) missingAny() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.missing) > 0
}

// loads returns every gate's load.
func (c *catalog) loads() map[string]slots.Load {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]slots.Load, len(c.gates))
	for id, g := range c.gates {
		out[id] = g.Load()
	}
	return out
}

func cloneAll(ms []*pb.ModelDescriptor) []*pb.ModelDescriptor {
	out := make([]*pb.ModelDescriptor, len(ms))
	for i, m := range ms {
		out[i] = proto.Clone(m).(*pb.ModelDescriptor)
	}
	return out
}
