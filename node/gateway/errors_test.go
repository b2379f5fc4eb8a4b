package gateway_test

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/node/executor"
	"github.com/lloom/lloom/node/gateway"
	"github.com/lloom/lloom/pkg/backend/backendtest"
	lp "github.com/lloom/lloom/protocol"
)

// Requests the gateway refuses itself get OpenAI's error shape with the
// right status, and never reach a backend.
func TestRefusedRequests(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithModels(model))
	v := startValidator(t, nil)
	serve(t, v, fake, 4, nil)
	g := startGateway(t, v, nil)

	tests := []struct {
		name, path, body string
		status           int
		typ, code, param string
	}{
		{"invalid JSON", "/v1/chat/completions", `{"model":`, 400, "invalid_request_error", "invalid_request", ""},
		{"not an object", "/v1/chat/completions", `[1,2]`, 400, "invalid_request_error", "invalid_request", ""},
		{"no model", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_request_error", "invalid_request", "model"},
		{"n=2", "/v1/chat/completions", chatBody("hi", `"n":2`), 400, "invalid_request_error", "invalid_request", "n"},
		{"no messages", "/v1/chat/completions", `{"model":"test-model","messages":[]}`, 400, "invalid_request_error", "invalid_request", "messages"},
		{"unknown role", "/v1/chat/completions", `{"model":"test-model","messages":[{"role":"tool","content":"hi"}]}`, 400, "invalid_request_error", "invalid_request", "messages[0].role"},
		{"image part", "/v1/chat/completions", `{"model":"test-model","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, 400, "invalid_request_error", "invalid_request", "messages[0].content"},
		{"no prompt", "/v1/completions", `{"model":"test-model"}`, 400, "invalid_request_error", "invalid_request", "prompt"},
		{"temperature 3", "/v1/chat/completions", chatBody("hi", `"temperature":3`), 400, "invalid_request_error", "invalid_request", ""},
		{"stop not strings", "/v1/completions", completionBody("hi", `"stop":[1]`), 400, "invalid_request_error", "invalid_request", "stop"},
		{"five stop strings", "/v1/completions", completionBody("hi", `"stop":["a","b","c","d","e"]`), 400, "invalid_request_error", "invalid_request", ""},
		{"max_tokens 0", "/v1/completions", completionBody("hi", `"max_tokens":0`), 400, "invalid_request_error", "invalid_request", ""},
		{"unknown model", "/v1/chat/completions", `{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}`, 404, "invalid_request_error", "model_not_found", ""},
		{"unknown model, streamed", "/v1/completions", `{"model":"no-such-model","prompt":"hi","stream":true}`, 404, "invalid_request_error", "model_not_found", ""},
		{"body over 4 MiB", "/v1/completions", completionBody(strings.Repeat("a", lp.MaxInferenceRequestSize), ""), 413, "invalid_request_error", "request_too_large", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := g.post(t, tt.path, tt.body)
			wantError(t, resp, body, tt.status, tt.typ, tt.code)
			var e errorBody
			decodeJSON(t, body, &e)
			if tt.param != "" && (e.Error.Param == nil || *e.Error.Param != tt.param) {
				t.Errorf("param %v, want %q", e.Error.Param, tt.param)
			}
		})
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("the backend received %d requests; refused ones must not reach it", n)
	}
}

// With an API key set, only requests bearing it are served.
func TestAPIKey(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithModels(model))
	v := startValidator(t, nil)
	serve(t, v, fake, 4, nil)
	g := startGateway(t, v, func(c *gateway.Config) { c.APIKey = "sk-lloom-test" })

	for _, tt := range []struct {
		name, auth string
		status     int
	}{
		{"no key", "", 401},
		{"wrong key", "Bearer sk-lloom-wrong", 401},
		{"key without Bearer", "sk-lloom-test", 401},
		{"key as Basic", "Basic sk-lloom-test", 401},
		{"right key", "Bearer sk-lloom-test", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.auth != "" {
				hdr = []string{"Authorization", tt.auth}
			}
			for _, r := range []struct{ method, path, body string }{
				{http.MethodGet, "/v1/models", ""},
				{http.MethodGet, "/v1/models/" + model, ""},
				{http.MethodPost, "/v1/chat/completions", chatBody("hi", "")},
				{http.MethodPost, "/v1/completions", completionBody("hi", `"stream":true`)},
			} {
				resp, body := g.do(t, t.Context(), r.method, r.path, r.body, hdr...)
				if tt.status == 401 {
					wantError(t, resp, body, 401, "invalid_request_error", "invalid_api_key")
				} else if resp.StatusCode != 200 {
					t.Errorf("%s %s with the right key: %d %s", r.method, r.path, resp.StatusCode, body)
				}
			}
		})
	}
	if n := len(fake.Requests()); n != 2 {
		t.Errorf("the backend received %d requests, want the 2 with the right key", n)
	}
}

// Listening beyond loopback without an API key is refused before anything
// starts.
func TestListenBeyondLoopbackNeedsAKey(t *testing.T) {
	peers, err := node.ParseBootstrapPeers("127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		listen, key string
		refused     bool
	}{
		{"127.0.0.1:8000", "", false},
		{"127.0.0.2:0", "", false},
		{"localhost:8000", "", false},
		{"[::1]:8000", "", false},
		{"0.0.0.0:8000", "", true},
		{":8000", "", true},
		{"[::]:8000", "", true},
		{"192.168.1.20:8000", "", true},
		{"example.com:8000", "", true},
		{"0.0.0.0:8000", "sk-1", false},
	} {
		cfg := gateway.DefaultConfig()
		cfg.Client.Validators = peers
		cfg.Listen, cfg.APIKey = tt.listen, tt.key
		err := cfg.Validate()
		if got := errors.Is(err, gateway.ErrKeyRequired); got != tt.refused {
			t.Errorf("listen %q key %q: Validate() = %v; want refused=%v", tt.listen, tt.key, err, tt.refused)
		}
		if tt.refused && !strings.Contains(err.Error(), tt.listen) {
			t.Errorf("listen %q: error %q does not name the address", tt.listen, err)
		}
		if tt.refused {
			if g, err := gateway.New(cfg); !errors.Is(err, gateway.ErrKeyRequired) {
				if g != nil {
					g.Close()
				}
				t.Errorf("listen %q: New() = %v, want ErrKeyRequired", tt.listen, err)
			}
		}
	}
}

// Past MaxConcurrent requests in flight, 429 at once; the slot comes back
// when a request ends.
func TestMaxConcurrent(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithModels(model))
	v := startValidator(t, nil)
	serve(t, v, fake, 4, nil)
	g := startGateway(t, v, func(c *gateway.Config) { c.MaxConcurrent = 1 })
	release := fake.Block()
	t.Cleanup(release)

	held := make(chan int, 1)
	go func() { held <- g.postStatus("/v1/chat/completions", chatBody("hi", "")) }()
	fake.WaitActive(t, 1, within)

	resp, body := g.post(t, "/v1/chat/completions", chatBody("hi", `"stream":true`))
	wantError(t, resp, body, http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if resp, body := g.do(t, t.Context(), http.MethodGet, "/v1/models", ""); resp.StatusCode != 200 {
		t.Errorf("GET /v1/models while the gateway is full: %d %s", resp.StatusCode, body)
	}
	release()
	if code := <-held; code != 200 {
		t.Fatalf("the held request: status %d after release", code)
	}
	if resp, body := g.post(t, "/v1/completions", completionBody("hi", "")); resp.StatusCode != 200 {
		t.Errorf("after the held request ended: %d %s", resp.StatusCode, body)
	}
	if n := len(fake.Requests()); n != 2 {
		t.Errorf("the backend received %d requests, want 2 (the 429 must not reach it)", n)
	}
}

// When every executor is full (capacity 1, no queue, both busy), 503 with
// Retry-After; and a model whose only executor cannot take requests at all
// (its backend down) is 503 too, not "does not exist".
func TestNoCapacity(t *testing.T) {
	t.Run("every executor full", func(t *testing.T) {
		f1 := backendtest.New(t, backendtest.WithModels(model))
		f2 := backendtest.New(t, backendtest.WithModels(model))
		v := startValidator(t, nil)
		e1 := serve(t, v, f1, 1, noQueue)
		e2 := serve(t, v, f2, 1, noQueue)
		g := startGateway(t, v, nil)
		r1, r2 := f1.Block(), f2.Block()
		t.Cleanup(r1)
		t.Cleanup(r2)

		var wg sync.WaitGroup
		codes := make(chan int, 2)
		hold := func() {
			wg.Go(func() { codes <- g.postStatus("/v1/chat/completions", chatBody("hi", "")) })
		}
		hold()
		waitActive(t, 1, f1, f2)
		hold() // lands on the other executor, at once or after a 6002
		f1.WaitActive(t, 1, within)
		f2.WaitActive(t, 1, within)

		for _, stream := range []bool{false, true} {
			start := time.Now()
			resp, body := g.post(t, "/v1/chat/completions", chatBody("hi", fmt.Sprintf(`"stream":%v`, stream)))
			msg := wantError(t, resp, body, http.StatusServiceUnavailable, "api_error", "no_capacity")
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
				t.Errorf("Retry-After %q, want whole seconds ≥ 1", resp.Header.Get("Retry-After"))
			}
			if !strings.Contains(msg, e1.ID().String()) || !strings.Contains(msg, e2.ID().String()) {
				t.Errorf("message %q does not name both executors tried", msg)
			}
			t.Logf("503 (stream %v) after %v: %s", stream, time.Since(start).Round(time.Millisecond), msg)
		}
		r1()
		r2()
		wg.Wait()
		for range 2 {
			if c := <-codes; c != 200 {
				t.Errorf("a held request: status %d after release", c)
			}
		}
	})
	t.Run("only executor unavailable", func(t *testing.T) {
		fake := backendtest.New(t, backendtest.WithModels(model))
		fake.SetDown(true)
		v := startValidator(t, nil)
		serve(t, v, fake, 4, nil)
		g := startGateway(t, v, nil)
		resp, body := g.post(t, "/v1/chat/completions", chatBody("hi", ""))
		wantError(t, resp, body, http.StatusServiceUnavailable, "api_error", "no_capacity")
		if resp.Header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	})
}

// waitActive waits until the fakes hold n requests between them.
func waitActive(t *testing.T, n int, fakes ...*backendtest.Fake) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		sum := 0
		for _, f := range fakes {
			sum += f.Active()
		}
		if sum == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests active at the backends after %s, want %d", sum, within, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An executor that refuses for rate (4290) gives 429 with its hint.
func TestExecutorRateLimit(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithModels(model))
	v := startValidator(t, nil)
	serve(t, v, fake, 4, func(c *executor.Config) { c.InferenceRate = 0.5 }) // a burst of 1
	g := startGateway(t, v, nil)
	if resp, body := g.post(t, "/v1/chat/completions", chatBody("hi", "")); resp.StatusCode != 200 {
		t.Fatalf("first request: %d %s", resp.StatusCode, body)
	}
	resp, body := g.post(t, "/v1/chat/completions", chatBody("hi", ""))
	wantError(t, resp, body, http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded")
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q, want whole seconds ≥ 1", resp.Header.Get("Retry-After"))
	}
}

// When every executor's backend fails before the first token, 502 naming
// each attempt.
func TestEveryAttemptFailed(t *testing.T) {
	for _, tt := range []struct {
		name   string
		break_ func(*backendtest.Fake)
	}{
		{"backends answer 500", func(f *backendtest.Fake) { f.SetFail(500, "", "") }},
		{"backends down", func(f *backendtest.Fake) { f.SetDown(true) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f1 := backendtest.New(t, backendtest.WithModels(model))
			f2 := backendtest.New(t, backendtest.WithModels(model))
			v := startValidator(t, nil)
			e1 := serve(t, v, f1, 4, nil)
			e2 := serve(t, v, f2, 4, nil)
			g := startGateway(t, v, nil)
			tt.break_(f1)
			tt.break_(f2)
			resp, body := g.post(t, "/v1/chat/completions", chatBody("hi", `"stream":true`))
			msg := wantError(t, resp, body, http.StatusBadGateway, "api_error", "executor_failed")
			for _, want := range []string{"attempt 1", "attempt 2", e1.ID().String(), e2.ID().String()} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not contain %q", msg, want)
				}
			}
		})
	}
}

// A failure before the first token moves on to another executor, unseen
// by the client but for the attempts in the lloom object.
func TestFailoverBeforeTheFirstToken(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream %v", stream), func(t *testing.T) {
			bad := backendtest.New(t, backendtest.WithModels(model))
			good := backendtest.New(t, backendtest.WithModels(model))
			v := startValidator(t, nil)
			// No periodic look at a backend that seems fine: only a
			// request finds bad down.
			quiet := func(c *executor.Config) { c.Backend.ListInterval = time.Hour }
			eb := serve(t, v, bad, 4, quiet)
			eg := serve(t, v, good, 4, quiet)
			g := startGateway(t, v, nil)
			bad.SetDown(true)

			// Each request picks one of the two at random: send until one
			// tried bad first (or give up after 30, odds 2^-30).
			for i := range 30 {
				resp, body := g.post(t, "/v1/chat/completions", chatBody("hi", fmt.Sprintf(`"stream":%v`, stream)))
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("request %d: %d %s; want 200 from the good executor", i, resp.StatusCode, body)
				}
				l, text := answerOf(t, resp, body, stream)
				if text != "w0 w1 w2 w3 w4 w5 w6 w7" || l.Executor != eg.ID().String() || resp.Header.Get("X-Lloom-Executor") != l.Executor {
					t.Fatalf("request %d: text %q from %s (header %s); want the good executor %s's answer",
						i, text, l.Executor, resp.Header.Get("X-Lloom-Executor"), eg.ID())
				}
				if len(l.Attempts) == 1 {
					continue
				}
				a := l.Attempts
				if len(a) != 2 || a[0].Executor != eb.ID().String() || a[0].ErrorCode != int32(lp.ErrBackendFailed.Code) || a[0].Error == "" ||
					a[1].Executor != eg.ID().String() || a[1].ErrorCode != 0 {
					t.Fatalf("attempts %+v; want bad's 6003, then good's answer", a)
				}
				checkReceipt(t, g, l.Receipt, l.Executor, nil, text)
				return
			}
			t.Fatal("30 requests and none tried the executor whose backend is down")
		})
	}
}

// answerOf is the lloom object and text of a 200 answer, streamed or not.
func answerOf(t *testing.T, resp *http.Response, body []byte, stream bool) (*lloomJSON, string) {
	t.Helper()
	if stream {
		s := readStream(t, &http.Response{Body: nopCloser{strings.NewReader(string(body))}})
		if !s.done || s.chunks[len(s.chunks)-1].Lloom == nil {
			t.Fatalf("stream %s: want the lloom object and [DONE]", body)
		}
		return s.chunks[len(s.chunks)-1].Lloom, s.text
	}
	var a answerJSON
	decodeJSON(t, body, &a)
	if a.Lloom == nil || len(a.Choices) != 1 || a.Choices[0].Message == nil {
		t.Fatalf("answer %s: want one message and the lloom object", body)
	}
	return a.Lloom, a.Choices[0].Message.Content
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }

// No first token within the gateway's timeout: 504, and the backend call
// is cancelled.
func TestTimeoutBeforeTheFirstToken(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithModels(model), backendtest.WithDelay(5*time.Second, 0))
	v := startValidator(t, nil)
	serve(t, v, fake, 4, nil)
	const timeout = 500 * time.Millisecond
	g := startGateway(t, v, func(c *gateway.Config) { c.Timeout = timeout })
	for i, stream := range []bool{false, true} {
		start := time.Now()
		resp, body := g.post(t, "/v1/chat/completions", chatBody("hi", fmt.Sprintf(`"stream":%v`, stream)))
		took := time.Since(start)
		wantError(t, resp, body, http.StatusGatewayTimeout, "api_error", "timeout")
		if took < timeout || took > timeout+3*time.Second {
			t.Errorf("stream %v: 504 after %v, want soon after the %v timeout", stream, took, timeout)
		}
		fake.WaitCancelled(t, i+1, 2*time.Second)
	}
}
