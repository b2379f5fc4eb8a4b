package validator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/lloom/lloom/pkg/feed"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// The validator's read-only HTTP API and dashboard (DESIGN §12), off unless
// Config.HTTPListen is set: GET /api/v1/stats, /api/v1/models,
// /api/v1/executors, the event stream /api/v1/events (http_events.go) and
// the dashboard page at / (dashboard.go). Nothing here changes the
// registry; what it shows, anyone may ask over /lloom/query/1.0.0 already.
// JSON follows DESIGN §3's conventions (package feed).

// httpAPI is the HTTP server.
type httpAPI struct {
	v   *Validator
	ln  net.Listener
	srv *http.Server
}

// validateFeed checks the settings of the change feed and the HTTP API.
func (c Config) validateFeed() error {
	if c.WatchSubscribers < 0 {
		return fmt.Errorf("watch subscribers %d must be 0 (the default, %d) or positive", c.WatchSubscribers, DefaultWatchSubscribers)
	}
	if c.EventKeepAlive < 0 {
		return fmt.Errorf("event keepalive %s must be 0 (the default, %s) or positive", c.EventKeepAlive, DefaultEventKeepAlive)
	}
	if c.HTTPListen != "" {
		if _, _, err := net.SplitHostPort(c.HTTPListen); err != nil {
			return fmt.Errorf("http listen address %q: want HOST:PORT, e.g. 127.0.0.1:8081", c.HTTPListen)
		}
	}
	return nil
}

// startFeed serves /lloom/watch/1.0.0.
func (v *Validator) startFeed() {
	v.feed = newHub(v.cfg.WatchSubscribers)
	v.watch = newWatchServer(v)
	v.h.SetStreamHandler(lp.WatchProtocol, v.watch.serve)
}

// listenHTTP binds the HTTP address, when one is set.
func (v *Validator) listenHTTP() error {
	if v.cfg.HTTPListen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", v.cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("validator: http listen on %s: %w", v.cfg.HTTPListen, err)
	}
	a := &httpAPI{v: v, ln: ln}
	a.srv = &http.Server{
		Handler:           a.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: the event stream lives long; each write has its
		// own deadline instead.
	}
	v.api = a
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); !isLoopback(host) {
		v.log.Warn().Str("http_listen", ln.Addr().String()).
			Msg("The HTTP API and dashboard listen beyond loopback: anyone who can reach the address sees the registry and the validator's figures (read-only); prefer 127.0.0.1 behind an SSH tunnel or a reverse proxy with authentication")
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// HTTPAddr is the HTTP API's address, or "" when it is off.
func (v *Validator) HTTPAddr() string {
	if v.api == nil {
		return ""
	}
	return v.api.ln.Addr().String()
}

// runFeed serves HTTP until ctx ends.
func (v *Validator) runFeed(ctx context.Context, wg *sync.WaitGroup) {
	a := v.api
	if a == nil {
		return
	}
	a.srv.BaseContext = func(net.Listener) context.Context { return ctx }
	wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = a.srv.Shutdown(sctx) // the event streams end with ctx
		_ = a.srv.Close()
	})
	wg.Go(func() {
		v.log.Info().Str("http_listen", a.ln.Addr().String()).
			Msg("HTTP API and dashboard at http://" + a.ln.Addr().String() + "/")
		if err := a.srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			v.log.Error().Err(err).Msg("HTTP API stopped")
		}
	})
}

// stopFeed ends the feed's streams and closes the HTTP listener.
func (v *Validator) stopFeed() {
	if v.watch != nil {
		v.watch.close()
	}
	if v.api != nil {
		_ = v.api.srv.Close()
		_ = v.api.ln.Close()
	}
}

func (a *httpAPI) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/stats", a.stats)
	mux.HandleFunc("GET /api/v1/models", a.models)
	mux.HandleFunc("GET /api/v1/executors", a.executors)
	mux.HandleFunc("GET /api/v1/events", a.events)
	mux.HandleFunc("GET /{$}", a.page)
	mux.HandleFunc("GET /assets/{name}", a.asset)
	mux.HandleFunc("/", a.notFound)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		mux.ServeHTTP(w, r)
	})
}

// apiRoutes are the API's paths, for telling a wrong method from a wrong
// path.
var apiRoutes = map[string]bool{"/api/v1/stats": true, "/api/v1/models": true, "/api/v1/executors": true, "/api/v1/events": true, "/": true}

func (a *httpAPI) notFound(w http.ResponseWriter, r *http.Request) {
	if apiRoutes[r.URL.Path] {
		w.Header().Set("Allow", "GET, HEAD")
		writeAPIError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s %s: the API is read-only; use GET", r.Method, r.URL.Path))
		return
	}
	writeAPIError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no route %s %s; the validator serves GET /api/v1/stats, /api/v1/models, /api/v1/executors, /api/v1/events and the dashboard at /", r.Method, r.URL.Path))
}

// apiTimeout bounds writing one JSON answer.
const apiTimeout = 30 * time.Second

func writeAPIJSON(w http.ResponseWriter, status int, v any) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(apiTimeout))
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeAPIError writes {"error": {"code", "message"}}.
func writeAPIError(w http.ResponseWriter, status int, code, msg string) {
	writeAPIJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// statsOf is the validator's figures: the statistics query's, and its own.
func (a *httpAPI) statsOf(now time.Time) map[string]any {
	v := a.v
	out := feed.Stats(v.Stats())
	f := v.Feed()
	out["peer_id"] = v.ID().String()
	out["network"] = v.cfg.Network
	out["addrs"] = v.Addrs()
	out["version"] = strconv.FormatUint(v.reg.Version(), 10)
	out["now_ms"] = now.UnixMilli()
	out["stale_after_ms"] = v.cfg.Registry.StaleAfter.Milliseconds()
	out["remove_after_ms"] = v.cfg.Registry.RemoveAfter.Milliseconds()
	out["subscribers"] = f.Subscribers
	out["subscribers_cut"] = f.Cut
	return out
}

func (a *httpAPI) stats(w http.ResponseWriter, _ *http.Request) {
	writeAPIJSON(w, http.StatusOK, a.statsOf(a.v.cfg.Now()))
}

// pageParams reads offset and limit as the query protocol takes them.
func pageParams(r *http.Request) (offset, limit uint32, err error) {
	for name, p := range map[string]*uint32{"offset": &offset, "limit": &limit} {
		s := r.URL.Query().Get(name)
		if s == "" {
			continue
		}
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("%s=%q: want a whole number", name, s)
		}
		*p = uint32(n)
	}
	if limit > lp.MaxQueryLimit {
		return 0, 0, fmt.Errorf("limit=%d: at most %d", limit, lp.MaxQueryLimit)
	}
	if limit == 0 {
		limit = lp.DefaultQueryLimit
	}
	return offset, limit, nil
}

func boolParam(r *http.Request, name string) (bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want true or false", name, s)
	}
	return b, nil
}

// models lists every model with its executors' counts by status, stale and
// unavailable ones included; unverified ones with include_unverified=true.
func (a *httpAPI) models(w http.ResponseWriter, r *http.Request) {
	offset, limit, err := pageParams(r)
	unverified, err2 := boolParam(r, "include_unverified")
	if err = errors.Join(err, err2); err != nil {
		writeAPIError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	q := &pb.QueryRequest{
		Query:   &pb.QueryRequest_ListModels{ListModels: &pb.ListModelsQuery{}},
		Filters: &pb.QueryFilters{IncludeStale: true, IncludeUnavailable: true, IncludeUnverified: unverified},
		Offset:  offset,
		Limit:   limit,
	}
	resp := a.v.reg.Query(q, int(limit), a.v.cfg.Now())
	type load struct {
		Active   uint32 `json:"active"`
		Queued   uint32 `json:"queued"`
		Capacity uint32 `json:"capacity"`
	}
	type model struct {
		ModelID    string `json:"model_id"`
		Executors  uint32 `json:"executors"`
		Healthy    uint32 `json:"healthy"`
		Overloaded uint32 `json:"overloaded"`
		Stale      uint32 `json:"stale"`
		BestLoad   load   `json:"best_load"`
	}
	out := make([]model, 0, len(resp.GetModels().GetModels()))
	for _, m := range resp.GetModels().GetModels() {
		b := m.GetBestLoad()
		out = append(out, model{m.GetModelId(), m.GetExecutorCount(), m.GetHealthyCount(), m.GetOverloadedCount(), m.GetStaleCount(),
			load{b.GetActive(), b.GetQueued(), b.GetCapacity()}})
	}
	writeAPIJSON(w, http.StatusOK, map[string]any{"total_count": resp.GetTotalCount(), "offset": offset, "models": out})
}

// executors lists the executors, sorted by peer id: every one, or those
// serving model=; verified ones unless include_unverified=true.
func (a *httpAPI) executors(w http.ResponseWriter, r *http.Request) {
	vw, err := viewParams(r)
	offset, limit, err2 := pageParams(r)
	if err = errors.Join(err, err2); err != nil {
		writeAPIError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	version, states := a.v.reg.Snapshot(vw.model, a.v.cfg.Now())
	kept := states[:0]
	for i := range states {
		if vw.shows(&states[i], states[i].Verified) {
			kept = append(kept, states[i])
		}
	}
	pg := page(kept, int(offset), int(limit))
	out := make([]feed.Executor, len(pg))
	for i := range pg {
		out[i] = feed.ExecutorOf(watched(&pg[i]))
	}
	writeAPIJSON(w, http.StatusOK, map[string]any{
		"version": strconv.FormatUint(version, 10), "total_count": len(kept), "offset": offset, "executors": out,
	})
}

// viewParams reads model= and include_unverified=.
func viewParams(r *http.Request) (view, error) {
	var vw view
	vw.model = r.URL.Query().Get("model")
	if vw.model != "" && !lp.ValidModelID(vw.model) {
		return vw, fmt.Errorf("model=%q: want 1-128 characters of [A-Za-z0-9._:/@-]", vw.model)
	}
	var err error
	vw.unverified, err = boolParam(r, "include_unverified")
	return vw, err
}

func page[T any](items []T, offset, limit int) []T {
	if offset >= len(items) {
		return nil
	}
	items = items[offset:]
	return items[:min(limit, len(items))]
}
