package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lloom/lloom/pkg/backend/backendtest"
)

// A streamed answer in OpenAI's chunk format: the role on the first chat
// delta, the backend's text, a finish reason, usage only when asked for,
// the lloom object in the last chunk before [DONE], and [DONE] last.
func TestAnswerStreamed(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithTokens("Hel", "lo, ", "wörld", " 👋"))
	v := startValidator(t, nil)
	e := serve(t, v, fake, 4, nil)
	g := startGateway(t, v, nil)

	for _, tt := range []struct {
		name, path, body, object string
		chat, usage              bool
	}{
		{"chat", "/v1/chat/completions", chatBody("say hello to me", `"stream":true`), "chat.completion.chunk", true, false},
		{"chat with usage", "/v1/chat/completions", chatBody("say hello to me", `"stream":true,"stream_options":{"include_usage":true}`), "chat.completion.chunk", true, true},
		{"completion", "/v1/completions", completionBody("say hello to me", `"stream":true`), "text_completion", false, false},
		{"completion with usage", "/v1/completions", completionBody("say hello to me", `"stream":true,"stream_options":{"include_usage":true}`), "text_completion", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := g.open(t, t.Context(), http.MethodPost, tt.path, tt.body)
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if h := resp.Header.Get("X-Lloom-Executor"); h != e.ID().String() {
				t.Errorf("X-Lloom-Executor %q, want %s", h, e.ID())
			}
			if h := resp.Header.Get("X-Lloom-Receipt"); h != "" {
				t.Errorf("X-Lloom-Receipt %q in a stream's headers: its receipt comes in the last chunk", h)
			}
			s := readStream(t, resp)
			if !s.done || s.text != "Hello, wörld 👋" || s.finish != "stop" {
				t.Fatalf("stream text %q finish %q done %v; want the backend's text, stop and [DONE]", s.text, s.finish, s.done)
			}
			id := s.chunks[0].ID
			for i, c := range s.chunks {
				if c.Object != tt.object || c.Model != model || c.ID != id || c.Created <= 0 || c.Error != nil {
					t.Errorf("chunk %d %+v: want a %s of %s with the stream's id %s", i, c, tt.object, model, id)
				}
				if len(c.Choices) > 1 {
					t.Errorf("chunk %d has %d choices", i, len(c.Choices))
				}
				for _, ch := range c.Choices {
					switch {
					case tt.chat && ch.Delta == nil, !tt.chat && ch.Text == nil:
						t.Errorf("chunk %d: a %s choice without its delta or text", i, tt.object)
					case tt.chat && (ch.Delta.Role != nil) != (i == 0):
						t.Errorf("chunk %d: delta.role %v; want it on the first chunk only", i, ch.Delta.Role)
					case tt.chat && i == 0 && *ch.Delta.Role != "assistant":
						t.Errorf("first delta.role %q, want assistant", *ch.Delta.Role)
					}
				}
			}
			// The last chunk before [DONE] has no choices and carries the
			// lloom object, and the usage when asked for; no other does.
			last := s.chunks[len(s.chunks)-1]
			if len(last.Choices) != 0 || last.Lloom == nil {
				t.Fatalf("last chunk %+v: want no choices and the lloom object", last)
			}
			for i, c := range s.chunks[:len(s.chunks)-1] {
				if c.Lloom != nil || c.Usage != nil {
					t.Errorf("chunk %d carries lloom or usage before the last", i)
				}
			}
			switch {
			case tt.usage && (last.Usage == nil || *last.Usage != usageJSON{4, 4, 8}):
				t.Errorf("usage %+v; want the backend's 4 + 4 tokens", last.Usage)
			case !tt.usage && last.Usage != nil:
				t.Errorf("usage %+v without stream_options.include_usage", last.Usage)
			}
			l := last.Lloom
			if l.Executor != e.ID().String() || len(l.Attempts) != 1 || l.Attempts[0].ErrorCode != 0 {
				t.Errorf("lloom %+v; want executor %s and one successful attempt", l, e.ID())
			}
			checkReceipt(t, g, l.Receipt, l.Executor, nil, s.text)
		})
	}
}

// A failure after the first token ends the stream with an error event and
// no [DONE]: a client never takes the cut answer for a complete one.
func TestStreamCutAfterFirstTokenEndsWithAnError(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithModels(model))
	fake.SetCutAfter(2)
	v := startValidator(t, nil)
	// A cut stream makes its executor announce the backend unavailable
	// for a while; each of the three requests below still finds one of
	// these three executors that has not cut a stream yet.
	for range 3 {
		serve(t, v, fake, 4, nil)
	}
	g := startGateway(t, v, nil)

	for _, path := range []string{"/v1/chat/completions", "/v1/completions"} {
		body := chatBody("a b", `"stream":true`)
		if path == "/v1/completions" {
			body = completionBody("a b", `"stream":true`)
		}
		resp := g.open(t, t.Context(), http.MethodPost, path, body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d; want 200, the answer had started", path, resp.StatusCode)
		}
		s := readStream(t, resp)
		last := s.chunks[len(s.chunks)-1]
		if s.done || s.text != "w0 w1" || s.finish != "" || last.Error == nil || last.Error.Message == "" || last.Error.Type == "" {
			t.Errorf("%s: text %q finish %q done %v, last event %+v; want the 2 tokens sent, then an error event and no [DONE]",
				path, s.text, s.finish, s.done, last)
		}
	}

	// Not streamed, the same failure is a 502, never a short 200.
	resp, body := g.post(t, "/v1/chat/completions", chatBody("a b", ""))
	wantError(t, resp, body, http.StatusBadGateway, "api_error", "executor_failed")
}

// A client that goes away mid-answer cancels the request at the
// executor's backend.
func TestClientGoneCancelsAtTheBackend(t *testing.T) {
	tokens := make([]string, 200)
	for i := range tokens {
		tokens[i] = "x "
	}
	fake := backendtest.New(t, backendtest.WithTokens(tokens...), backendtest.WithDelay(0, 50*time.Millisecond))
	v := startValidator(t, nil)
	serve(t, v, fake, 4, nil)
	g := startGateway(t, v, nil)

	t.Run("mid-stream", func(t *testing.T) {
		fake.ResetStats()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		resp := g.open(t, ctx, http.MethodPost, "/v1/chat/completions", chatBody("a b", `"stream":true`))
		buf := make([]byte, 1)
		if _, err := resp.Body.Read(buf); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, first byte: %v", resp.StatusCode, err)
		}
		gone := time.Now()
		cancel()
		fake.WaitCancelled(t, 1, 2*time.Second)
		t.Logf("backend call cancelled %v after the client went", time.Since(gone).Round(time.Millisecond))
	})
	t.Run("before the first token, not streamed", func(t *testing.T) {
		fake.ResetStats()
		release := fake.Block()
		defer release()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.url+"/v1/chat/completions", strings.NewReader(chatBody("a b", "")))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		fake.WaitActive(t, 1, within)
		cancel()
		fake.WaitCancelled(t, 1, 2*time.Second)
		<-done
	})
}
