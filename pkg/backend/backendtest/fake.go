package backendtest

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Fake is an OpenAI-compatible server. It is safe for concurrent use;
// settings apply to requests that arrive after the change (SetDown also
// cuts streams in flight).
type Fake struct {
	srv  *httptest.Server
	quit chan struct{} // closed at cleanup: every wait ends

	mu       sync.Mutex
	settings     // guarded by mu
	stats        // guarded by mu
	nextID   int // guarded by mu
}

// settings is what the Set methods change. A request takes a copy when it
// arrives; only down is looked at again, before every chunk.
type settings struct {
	models       []string
	tokens       []string // nil: the default words
	delayFirst   time.Duration
	delayBetween time.Duration
	failStatus   int // 0: answer normally
	failBody     string
	failRetry    string
	down         bool
	cutAfter     int // <0: never cut
	noUsage      bool
	apiKey       string        // "": no key required
	gate         chan struct{} // nil: streams start at once
}

// Option configures a Fake at creation.
type Option func(*Fake)

// WithModels sets the models listed and served (default "test-model").
func WithModels(ids ...string) Option {
	return func(f *Fake) { f.models = append([]string(nil), ids...) }
}

// WithTokens sets the tokens every answer streams (see SetTokens).
func WithTokens(tokens ...string) Option {
	return func(f *Fake) { f.tokens = append([]string{}, tokens...) }
}

// WithDelay sets the delays before the first chunk and between chunks.
func WithDelay(first, between time.Duration) Option {
	return func(f *Fake) { f.delayFirst, f.delayBetween = first, between }
}

// WithAPIKey makes every endpoint demand "Authorization: Bearer key" and
// answer 401 in OpenAI's shape otherwise.
func WithAPIKey(key string) Option { return func(f *Fake) { f.apiKey = key } }

// New starts a fake server; t.Cleanup stops it, ending every request still
// waiting in a delay or behind Block.
func New(t testing.TB, opts ...Option) *Fake {
	t.Helper()
	f := &Fake{quit: make(chan struct{}), settings: settings{models: []string{"test-model"}, cutAfter: -1}}
	f.stats.init()
	for _, o := range opts {
		o(f)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", f.handleModels)
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { f.handleCompletion(w, r, true) })
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { f.handleCompletion(w, r, false) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no route for "+r.Method+" "+r.URL.Path, "invalid_request_error", "")
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		close(f.quit)
		f.srv.CloseClientConnections()
		f.srv.Close()
	})
	return f
}

// URL returns the base URL, ending in /v1.
func (f *Fake) URL() string { return f.srv.URL + "/v1" }

// SetModels sets what GET /v1/models lists; a completion for any other
// model gets 404 model_not_found.
func (f *Fake) SetModels(ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.models = append([]string(nil), ids...)
}

// SetTokens sets the exact token texts every answer streams, one chunk
// each, in place of the default words; nil restores the default.
// max_tokens and stop apply to them as to the default words.
func (f *Fake) SetTokens(tokens []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = nil
	if tokens != nil {
		f.tokens = append([]string{}, tokens...)
	}
}

// SetDelay sets the delay before the first chunk (after Block releases)
// and between chunks. A request whose client goes away stops waiting.
func (f *Fake) SetDelay(first, between time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delayFirst, f.delayBetween = first, between
}

// SetFail makes every request, models included, answer status with body
// (OpenAI's error shape naming the status when body is empty) and, when
// not empty, a Retry-After header. Status 0 restores normal answers.
func (f *Fake) SetFail(status int, body string, retryAfter string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failStatus, f.failBody, f.failRetry = status, body, retryAfter
}

// SetDown makes the fake drop every connection without an answer, as a
// crashed backend would: new requests, models included, and streams in
// flight at their next chunk. The client sees a transport error.
func (f *Fake) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

// SetCutAfter makes streams end cleanly after n content chunks, with no
// finish_reason and no data: [DONE]; n < 0 restores whole answers.
func (f *Fake) SetCutAfter(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cutAfter = n
}

// SetNoUsage stops the fake from reporting usage, even when asked.
func (f *Fake) SetNoUsage(noUsage bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noUsage = noUsage
}

// Block holds every completion request that arrives from now on before
// its first chunk (and before its response headers) until release is
// called. release may be called more than once.
func (f *Fake) Block() (release func()) {
	gate := make(chan struct{})
	f.mu.Lock()
	f.gate = gate
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			if f.gate == gate {
				f.gate = nil
			}
			f.mu.Unlock()
			close(gate)
		})
	}
}
