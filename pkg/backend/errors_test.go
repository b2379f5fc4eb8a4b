package backend_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lloom/lloom/pkg/backend"
	"github.com/lloom/lloom/pkg/backend/backendtest"
)

func TestStreamErrors(t *testing.T) {
	const ok = "data: {\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":null}]}\n\n"
	openAI404 := `{"error":{"message":"The model 'gpt-9' does not exist","type":"invalid_request_error","code":"model_not_found"}}`
	tests := []struct {
		name            string
		url             func(t *testing.T) string
		kind            backend.Kind
		status          int
		unavailable     bool
		inMessage       string
		retryMin, retry time.Duration // RetryAfter within [retryMin, retry]
		deltas          int
	}{
		{"connection refused", refusedURL, backend.KindFailed, 0, true, "connection refused", 0, 0, 0},
		{"backend down (connection dropped)", func(t *testing.T) string { f := backendtest.New(t); f.SetDown(true); return f.URL() },
			backend.KindFailed, 0, true, "EOF", 0, 0, 0},
		{"500 with OpenAI error", func(t *testing.T) string {
			return serve(t, status(500, nil, `{"error":{"message":"CUDA out of memory","type":"server_error"}}`))
		}, backend.KindFailed, 500, true, "HTTP 500: CUDA out of memory", 0, 0, 0},
		{"502 HTML page", func(t *testing.T) string {
			return serve(t, status(502, map[string]string{"Content-Type": "text/html"}, "<html>bad gateway</html>"))
		}, backend.KindFailed, 502, true, "HTTP 502 Bad Gateway", 0, 0, 0},
		{"503 from the fake", func(t *testing.T) string { f := backendtest.New(t); f.SetFail(503, "", ""); return f.URL() },
			backend.KindFailed, 503, true, "Service Unavailable", 0, 0, 0},
		{"401", func(t *testing.T) string { return backendtest.New(t, backendtest.WithAPIKey("k")).URL() },
			backend.KindFailed, 401, false, "Incorrect API key", 0, 0, 0},
		{"403", func(t *testing.T) string { return serve(t, status(403, nil, `{"error":"forbidden"}`)) },
			backend.KindFailed, 403, false, "HTTP 403: forbidden", 0, 0, 0},
		{"other 4xx", func(t *testing.T) string { return serve(t, status(413, nil, "too large")) },
			backend.KindFailed, 413, false, "HTTP 413: too large", 0, 0, 0},
		{"404 unknown model (fake)", func(t *testing.T) string { f := backendtest.New(t); f.SetModels("other"); return f.URL() },
			backend.KindNotFound, 404, false, `model "test-model" not found`, 0, 0, 0},
		{"404 OpenAI", func(t *testing.T) string { return serve(t, status(404, nil, openAI404)) },
			backend.KindNotFound, 404, false, "does not exist", 0, 0, 0},
		{"404 Ollama", func(t *testing.T) string {
			return serve(t, status(404, nil, `{"error":"model \"llama9\" not found, try pulling it first"}`))
		}, backend.KindNotFound, 404, false, "try pulling it first", 0, 0, 0},
		{"400", func(t *testing.T) string {
			return serve(t, status(400, nil, `{"error":{"message":"context too long"}}`))
		},
			backend.KindInvalid, 400, false, "context too long", 0, 0, 0},
		{"422", func(t *testing.T) string { return serve(t, status(422, nil, `{"detail":[{"msg":"bad top_p"}]}`)) },
			backend.KindInvalid, 422, false, "bad top_p", 0, 0, 0},
		{"429 with seconds", func(t *testing.T) string { f := backendtest.New(t); f.SetFail(429, "", "12"); return f.URL() },
			backend.KindOverloaded, 429, false, "Too Many Requests", 12 * time.Second, 12 * time.Second, 0},
		{"429 with a date", func(t *testing.T) string {
			return serve(t, status(429, map[string]string{"Retry-After": time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat)}, ""))
		}, backend.KindOverloaded, 429, false, "HTTP 429", 60 * time.Second, 2 * time.Minute, 0},
		{"429 without Retry-After", func(t *testing.T) string { return serve(t, status(429, nil, "slow down")) },
			backend.KindOverloaded, 429, false, "slow down", 0, 0, 0},
		{"stream cut before [DONE] (fake)", func(t *testing.T) string { f := backendtest.New(t); f.SetCutAfter(3); return f.URL() },
			backend.KindFailed, 0, true, "before data: [DONE]", 0, 0, 3},
		{"no finish_reason", func(t *testing.T) string { return serve(t, sse(ok+"data: [DONE]\n\n")) },
			backend.KindFailed, 0, true, "without a finish_reason", 0, 0, 1},
		{"garbage data line", func(t *testing.T) string { return serve(t, sse(ok+"data: {oops\n\n"+ok+"data: [DONE]\n\n")) },
			backend.KindFailed, 0, true, "undecodable", 0, 0, 1},
		{"error object in stream", func(t *testing.T) string {
			return serve(t, sse(ok+`data: {"error":{"message":"model runner crashed","type":"server_error"}}`+"\n\n"))
		}, backend.KindFailed, 0, true, "error in stream: model runner crashed", 0, 0, 1},
		{"over-long line", func(t *testing.T) string { return serve(t, sse(ok+"data: \""+strings.Repeat("x", 2<<20)+"\"\n\n")) },
			backend.KindFailed, 0, true, "longer than", 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := newClient(t, tt.url(t), "").Stream(t.Context(), chatReq("test-model", "hi"), nil)
			e := asError(t, err)
			if e.Kind != tt.kind || e.Status != tt.status || e.Unavailable != tt.unavailable ||
				e.RetryAfter < tt.retryMin || e.RetryAfter > tt.retry {
				t.Errorf("got %v status %d unavailable %v retry %v; want %v %d %v retry in [%v, %v]",
					e.Kind, e.Status, e.Unavailable, e.RetryAfter, tt.kind, tt.status, tt.unavailable, tt.retryMin, tt.retry)
			}
			if !strings.Contains(e.Message, tt.inMessage) || strings.ContainsAny(e.Message, "\r\n") {
				t.Errorf("message %q: want one line containing %q", e.Message, tt.inMessage)
			}
			if res.Deltas != tt.deltas {
				t.Errorf("Result.Deltas = %d before the error, want %d", res.Deltas, tt.deltas)
			}
			sentinel := map[backend.Kind]error{backend.KindFailed: backend.ErrFailed, backend.KindOverloaded: backend.ErrOverloaded,
				backend.KindNotFound: backend.ErrNotFound, backend.KindInvalid: backend.ErrInvalid}[tt.kind]
			if !errors.Is(err, sentinel) {
				t.Errorf("errors.Is(err, %v) = false", sentinel)
			}
		})
	}
}

func TestResponseHeaderTimeout(t *testing.T) {
	f := backendtest.New(t)
	f.SetDelay(time.Hour, 0) // headers go out with the first chunk, never
	hc := &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 50 * time.Millisecond}}
	c, err := backend.New(f.URL(), "", hc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Stream(t.Context(), chatReq("test-model", "hi"), nil)
	if e := asError(t, err); e.Kind != backend.KindFailed || e.Status != 0 || !e.Unavailable || !strings.Contains(e.Message, "timeout") {
		t.Fatalf("got %+v; want a transport failure naming the timeout", e)
	}
}
