package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/lloom/lloom/node/client"
)

// Gateway is one OpenAI-compatible HTTP server over a lloom client.
type Gateway struct {
	cfg    Config
	log    zerolog.Logger
	client *client.Client
	models *modelCache
	finder *finder
	slots  chan struct{} // one token per request in flight
	mux    *http.ServeMux
	meters *meters // nil: metrics off (metrics.go)

	mu  sync.Mutex
	ln  net.Listener // guarded by mu
	srv *http.Server // guarded by mu
}

// New builds the gateway and its client host; Run serves.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Filters == nil {
		cfg.Filters = DefaultConfig().Filters
	}
	c, err := client.New(cfg.Client)
	if err != nil {
		return nil, err
	}
	m, err := newMeters(cfg.Client.Metrics)
	if err != nil {
		c.Close()
		return nil, err
	}
	g := &Gateway{
		cfg:    cfg,
		log:    cfg.Logger.With().Str("role", "gateway").Logger(),
		client: c,
		slots:  make(chan struct{}, cfg.MaxConcurrent),
		mux:    http.NewServeMux(),
		meters: m,
	}
	g.finder = newFinder(c)
	g.models = newModelCache(c, cfg.Filters, cfg.ModelsRefresh, g.log)
	g.routes()
	return g, nil
}

// Client is the gateway's lloom client.
func (g *Gateway) Client() *client.Client { return g.client }

// Handler is the gateway's HTTP handler (tests serve it themselves),
// counted in the metrics when they are on (metrics.go).
func (g *Gateway) Handler() http.Handler { return g.meters.instrument(g.mux) }

func (g *Gateway) routes() {
	g.mux.HandleFunc("GET /v1/models", g.auth(g.listModels))
	g.mux.HandleFunc("GET /v1/models/{model...}", g.auth(g.getModel))
	g.mux.HandleFunc("POST /v1/chat/completions", g.auth(g.limit(g.chat)))
	g.mux.HandleFunc("POST /v1/completions", g.auth(g.limit(g.complete)))
	g.mux.HandleFunc("GET /{$}", g.chatPage) // the chat page (page.go)
	g.mux.HandleFunc("GET /ui/{name}", g.chatAsset)
	g.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "invalid_request_error", "not_found", fmt.Sprintf("no route %s %s; lloom's gateway serves GET /v1/models, POST /v1/chat/completions and POST /v1/completions", r.Method, r.URL.Path))
	})
}

// Listen binds the HTTP address; Addr is known from then on.
func (g *Gateway) Listen() error {
	ln, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("gateway: listen on %s: %w", g.cfg.Listen, err)
	}
	g.mu.Lock()
	g.ln = ln
	g.mu.Unlock()
	return nil
}

// Addr is the address the gateway listens on, once Listen succeeded.
func (g *Gateway) Addr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln == nil {
		return ""
	}
	return g.ln.Addr().String()
}

// Run serves HTTP until ctx ends (listening first if Listen was not
// called), keeping the model list fresh.
func (g *Gateway) Run(ctx context.Context) error {
	if g.Addr() == "" {
		if err := g.Listen(); err != nil {
			return err
		}
	}
	srv := &http.Server{
		Handler:           g.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	g.mu.Lock()
	g.srv = srv
	ln := g.ln
	g.mu.Unlock()

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { g.models.run(ctx) })
	wg.Go(func() {
		<-ctx.Done()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
	})
	g.log.Info().Str("listen", ln.Addr().String()).Bool("api_key", g.cfg.APIKey != "").
		Msg("Gateway listening: OpenAI-compatible API at http://" + ln.Addr().String() + "/v1")
	err := srv.Serve(ln)
	cancel()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close closes the client host. Run must have returned.
func (g *Gateway) Close() error { return g.client.Close() }
