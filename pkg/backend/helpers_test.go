package backend_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lloom/lloom/pkg/backend"
)

// within bounds every wait of these tests; none is expected to take it.
const within = 10 * time.Second

func newClient(t *testing.T, baseURL, apiKey string) *backend.Client {
	t.Helper()
	c, err := backend.New(baseURL, apiKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// chatReq is a one-message chat request for model.
func chatReq(model, content string) backend.Request {
	return backend.Request{Model: model, Messages: []backend.Message{{Role: "user", Content: content}}}
}

// collect returns onDelta for Stream that appends to *text.
func collect(text *string) func(string) error {
	return func(s string) error { *text += s; return nil }
}

// serve starts a hand-written backend; its base URL ends in /v1.
func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/v1"
}

// sse answers every request with body as an event stream.
func sse(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, body)
	}
}

// status answers every request with status, headers and body.
func status(code int, header map[string]string, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

// refusedURL returns a base URL nothing listens on.
func refusedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/v1"
}

// asError fails t unless err is a *backend.Error.
func asError(t *testing.T, err error) *backend.Error {
	t.Helper()
	var e *backend.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want a *backend.Error", err, err)
	}
	return e
}
