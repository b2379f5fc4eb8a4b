package backend_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lloom/lloom/pkg/backend"
	"github.com/lloom/lloom/pkg/backend/backendtest"
)

func ptr[T any](v T) *T { return &v }

func TestStreamFake(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(*backendtest.Fake)
		req        backend.Request
		want       string
		wantFinish string
		wantUsage  *backend.Usage
		wantDeltas int
	}{
		{"chat, default answer", nil, chatReq("test-model", "say something"),
			"w0 w1 w2 w3 w4 w5 w6 w7", "stop", &backend.Usage{PromptTokens: 2, CompletionTokens: 8}, 8},
		{"completion cut by max_tokens", nil, backend.Request{Model: "test-model", Prompt: "once upon a time", MaxTokens: ptr(uint32(3))},
			"w0 w1 w2", "length", &backend.Usage{PromptTokens: 4, CompletionTokens: 3}, 3},
		{"stop string", nil, backend.Request{Model: "test-model", Prompt: "x", Stop: []string{" w2"}},
			"w0 w1", "stop", &backend.Usage{PromptTokens: 1, CompletionTokens: 2}, 2},
		{"exact tokens, multi-byte", func(f *backendtest.Fake) { f.SetTokens([]string{"Grü", "ße ", "😀"}) }, chatReq("test-model", "hi"),
			"Grüße 😀", "stop", &backend.Usage{PromptTokens: 1, CompletionTokens: 3}, 3},
		{"no usage reported", func(f *backendtest.Fake) { f.SetNoUsage(true) }, chatReq("test-model", "hi"),
			"w0 w1 w2 w3 w4 w5 w6 w7", "stop", nil, 8},
		{"empty answer", func(f *backendtest.Fake) { f.SetTokens([]string{}) }, chatReq("test-model", "hi"),
			"", "stop", &backend.Usage{PromptTokens: 1, CompletionTokens: 0}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := backendtest.New(t)
			if tt.setup != nil {
				tt.setup(f)
			}
			var text string
			res, err := newClient(t, f.URL(), "").Stream(t.Context(), tt.req, collect(&text))
			if err != nil {
				t.Fatal(err)
			}
			if text != tt.want || res.FinishReason != tt.wantFinish || res.Deltas != tt.wantDeltas ||
				(res.Usage == nil) != (tt.wantUsage == nil) || res.Usage != nil && *res.Usage != *tt.wantUsage {
				t.Fatalf("got %q, %+v (usage %v); want %q, finish %q, %d deltas, usage %v",
					text, res, res.Usage, tt.want, tt.wantFinish, tt.wantDeltas, tt.wantUsage)
			}
		})
	}
}

func TestParametersReachBackend(t *testing.T) {
	f := backendtest.New(t)
	c := newClient(t, f.URL(), "")
	full := backend.Request{
		Model: "test-model",
		Messages: []backend.Message{
			{Role: "system", Content: "be brief"}, {Role: "user", Content: "hi"}, {Role: "assistant", Content: "hello"},
		},
		MaxTokens: ptr(uint32(5)), Temperature: ptr(0.0), TopP: ptr(0.25), Stop: []string{"\n\n", "END"}, Seed: ptr(int64(-42)),
	}
	bare := backend.Request{Model: "test-model", Prompt: "just a prompt"}
	for _, req := range []backend.Request{full, bare} {
		if _, err := c.Stream(t.Context(), req, nil); err != nil {
			t.Fatal(err)
		}
	}
	got := f.Requests()
	if len(got) != 2 {
		t.Fatalf("%d requests reached the backend, want 2", len(got))
	}
	r := got[0]
	msgs := make([]backend.Message, len(r.Messages))
	for i, m := range r.Messages {
		msgs[i] = backend.Message{Role: m.Role, Content: m.Content}
	}
	if r.Path != "/v1/chat/completions" || r.Model != "test-model" || !slices.Equal(msgs, full.Messages) || r.Prompt != "" ||
		r.MaxTokens == nil || *r.MaxTokens != 5 || r.Temperature == nil || *r.Temperature != 0 ||
		r.TopP == nil || *r.TopP != 0.25 || !slices.Equal(r.Stop, full.Stop) || r.Seed == nil || *r.Seed != -42 ||
		!r.Stream || !r.IncludeUsage {
		t.Errorf("chat request reached the backend as %+v", r)
	}
	r = got[1]
	if r.Path != "/v1/completions" || r.Prompt != "just a prompt" || r.Messages != nil || r.MaxTokens != nil ||
		r.Temperature != nil || r.TopP != nil || r.Stop != nil || r.Seed != nil || !r.Stream || !r.IncludeUsage {
		t.Errorf("bare completion reached the backend as %+v; want no optional parameter sent", r)
	}
}

func TestInvalidRequestNotSent(t *testing.T) {
	f := backendtest.New(t)
	c := newClient(t, f.URL(), "")
	tests := []struct {
		name string
		req  backend.Request
	}{
		{"both messages and prompt", backend.Request{Model: "test-model", Prompt: "p", Messages: []backend.Message{{Role: "user", Content: "x"}}}},
		{"neither", backend.Request{Model: "test-model"}},
		{"no model", backend.Request{Prompt: "p"}},
		{"NaN temperature", backend.Request{Model: "test-model", Prompt: "p", Temperature: ptr(nan())}},
	}
	for _, tt := range tests {
		_, err := c.Stream(t.Context(), tt.req, nil)
		if e := asError(t, err); e.Kind != backend.KindInvalid || !errors.Is(err, backend.ErrInvalid) {
			t.Errorf("%s: %+v, want KindInvalid", tt.name, e)
		}
	}
	if n := len(f.Requests()); n != 0 {
		t.Fatalf("%d invalid requests reached the backend", n)
	}
}

func nan() float64 { var z float64; return z / z }

// chunkLine is one chat chunk as an SSE event.
func chunkLine(content, finish, usage string) string {
	fin := "null"
	if finish != "" {
		fin = fmt.Sprintf("%q", finish)
	}
	u := ""
	if usage != "" {
		u = `,"usage":` + usage
	}
	return fmt.Sprintf(`data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":%q},"finish_reason":%s}]%s}`+"\n\n", content, fin, u)
}

func TestUsageVariants(t *testing.T) {
	const usage = `{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}`
	tests := []struct {
		name      string
		body      string
		wantUsage *backend.Usage
	}{
		{"separate final chunk with empty choices",
			chunkLine("a", "", "") + chunkLine("b", "", "") + chunkLine("", "stop", "") + `data: {"choices":[],"usage":` + usage + "}\n\ndata: [DONE]\n\n",
			&backend.Usage{PromptTokens: 7, CompletionTokens: 2}},
		{"with the finish_reason",
			chunkLine("a", "", "") + chunkLine("b", "stop", usage) + "data: [DONE]\n\n",
			&backend.Usage{PromptTokens: 7, CompletionTokens: 2}},
		{"null in every chunk, then final (OpenAI)",
			chunkLine("a", "", "null") + chunkLine("b", "", "null") + chunkLine("", "stop", "null") + `data: {"choices":[],"usage":` + usage + "}\n\ndata: [DONE]\n\n",
			&backend.Usage{PromptTokens: 7, CompletionTokens: 2}},
		{"absent",
			chunkLine("a", "", "") + chunkLine("b", "", "") + chunkLine("", "stop", "") + "data: [DONE]\n\n",
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var text string
			res, err := newClient(t, serve(t, sse(tt.body)), "").Stream(t.Context(), chatReq("m", "x"), collect(&text))
			if err != nil {
				t.Fatal(err)
			}
			if text != "ab" || res.Deltas != 2 || res.FinishReason != "stop" ||
				(res.Usage == nil) != (tt.wantUsage == nil) || res.Usage != nil && *res.Usage != *tt.wantUsage {
				t.Fatalf("got %q, %+v (usage %v); want ab, 2 deltas, stop, usage %v", text, res, res.Usage, tt.wantUsage)
			}
		})
	}
}

// TestIncrementalDelivery: the server sends its second chunk only after
// the client has handed the first to onDelta; a client that buffered the
// body would never see it and the server would report that.
func TestIncrementalDelivery(t *testing.T) {
	gotFirst := make(chan struct{})
	serverErr := make(chan error, 1)
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		fmt.Fprint(w, chunkLine("first", "", ""))
		_ = rc.Flush()
		select {
		case <-gotFirst:
		case <-r.Context().Done():
			serverErr <- errors.New("client went away before it saw the first chunk")
			return
		case <-time.After(within):
			serverErr <- errors.New("first chunk not delivered while the stream was open")
			return
		}
		fmt.Fprint(w, chunkLine(" second", "stop", "")+"data: [DONE]\n\n")
		serverErr <- nil
	})
	var deltas []string
	res, err := newClient(t, url, "").Stream(t.Context(), chatReq("m", "x"), func(s string) error {
		if len(deltas) == 0 {
			close(gotFirst)
		}
		deltas = append(deltas, s)
		return nil
	})
	if err != nil || res.Deltas != 2 || strings.Join(deltas, "|") != "first| second" {
		t.Fatalf("Stream = %+v, %v, deltas %q", res, err, deltas)
	}
	if err := <-serverErr; err != nil {
		t.Fatal(err)
	}
}
