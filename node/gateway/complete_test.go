package gateway_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/lloom/lloom/pkg/backend/backendtest"
)

// A whole answer, chat or completion: the backend's text byte for byte,
// OpenAI's object, the usage, and the executor and its receipt in headers
// and in the body's "lloom" object.
func TestAnswerNotStreamed(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithTokens("Hel", "lo, ", "wörld", " 👋"))
	v := startValidator(t, nil)
	e := serve(t, v, fake, 4, nil)
	g := startGateway(t, v, nil)

	for _, tt := range []struct {
		name, path, body, object string
	}{
		{"chat", "/v1/chat/completions", chatBody("say hello to me", ""), "chat.completion"},
		{"completion", "/v1/completions", completionBody("say hello to me", `"stream":false`), "text_completion"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := g.post(t, tt.path, tt.body)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			var a answerJSON
			decodeJSON(t, body, &a)
			if a.Object != tt.object || a.Model != model || a.Created <= 0 || len(a.Choices) != 1 {
				t.Fatalf("body %s: want one choice of a %s for %s", body, tt.object, model)
			}
			c := a.Choices[0]
			text := ""
			switch {
			case tt.object == "chat.completion" && c.Message != nil && c.Message.Role == "assistant":
				text = c.Message.Content
			case tt.object == "text_completion" && c.Text != nil:
				text = *c.Text
			default:
				t.Fatalf("choice %s: want the text in its %s place", body, tt.object)
			}
			if text != "Hello, wörld 👋" || c.FinishReason == nil || *c.FinishReason != "stop" {
				t.Errorf("text %q finish %v; want the backend's %q and stop", text, c.FinishReason, "Hello, wörld 👋")
			}
			if a.Usage == nil || *a.Usage != (usageJSON{4, 4, 8}) {
				t.Errorf("usage %+v; want the backend's 4 prompt + 4 completion tokens", a.Usage)
			}
			l := a.Lloom
			if l == nil || l.Executor != e.ID().String() || len(l.Attempts) != 1 || l.Attempts[0].Executor != l.Executor || l.Attempts[0].ErrorCode != 0 {
				t.Fatalf("lloom %s; want executor %s and its one successful attempt", body, e.ID())
			}
			if h := resp.Header.Get("X-Lloom-Executor"); h != l.Executor {
				t.Errorf("X-Lloom-Executor %q, body names %q", h, l.Executor)
			}
			if h := resp.Header.Get("X-Lloom-Receipt"); h != l.Receipt {
				t.Errorf("X-Lloom-Receipt %q, body carries %q", h, l.Receipt)
			}
			checkReceipt(t, g, l.Receipt, l.Executor, requestIDOf(t, a.ID), text)
		})
	}
}

// OpenAI's parameters reach the backend as lloom maps them (DESIGN §8);
// unknown fields are ignored, as OpenAI does.
func TestParametersReachTheBackend(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithModels(model))
	v := startValidator(t, nil)
	serve(t, v, fake, 4, nil)
	g := startGateway(t, v, nil)

	u := func(n uint32) *uint32 { return &n }
	f := func(x float64) *float64 { return &x }
	i := func(n int64) *int64 { return &n }
	tests := []struct {
		name, path, body string
		want             backendtest.Received
	}{
		{"nothing set", "/v1/chat/completions", chatBody("a b", ""),
			backendtest.Received{Messages: []backendtest.Message{{Role: "user", Content: "a b"}}}},
		{"max_tokens", "/v1/chat/completions", chatBody("a b", `"max_tokens":3`),
			backendtest.Received{MaxTokens: u(3), Messages: []backendtest.Message{{Role: "user", Content: "a b"}}}},
		{"max_completion_tokens wins over max_tokens", "/v1/chat/completions", chatBody("a b", `"max_tokens":9,"max_completion_tokens":2`),
			backendtest.Received{MaxTokens: u(2), Messages: []backendtest.Message{{Role: "user", Content: "a b"}}}},
		{"stop as a string", "/v1/completions", completionBody("a b", `"stop":"w3"`),
			backendtest.Received{Prompt: "a b", Stop: []string{"w3"}}},
		{"stop as a list", "/v1/completions", completionBody("a b", `"stop":["x","y"]`),
			backendtest.Received{Prompt: "a b", Stop: []string{"x", "y"}}},
		{"seed, temperature, top_p", "/v1/completions", completionBody("a b", `"seed":42,"temperature":0.5,"top_p":0.9`),
			backendtest.Received{Prompt: "a b", Seed: i(42), Temperature: f(0.5), TopP: f(0.9)}},
		{"n=1, unknown fields and text parts", "/v1/chat/completions",
			`{"model":"test-model","n":1,"user":"u1","logit_bias":{},"frequency_penalty":0,"messages":[` +
				`{"role":"developer","content":"be brief"},{"role":"user","content":[{"type":"text","text":"a "},{"type":"text","text":"b"}]}]}`,
			backendtest.Received{Messages: []backendtest.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "a b"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake.ResetStats()
			resp, body := g.post(t, tt.path, tt.body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			got := fake.Requests()
			if len(got) != 1 {
				t.Fatalf("the backend received %d requests, want 1", len(got))
			}
			want := tt.want
			want.Path, want.Model, want.Stream, want.IncludeUsage = "/v1"+tt.path[3:], model, true, true
			r := got[0]
			r.Authorization = ""
			if !reflect.DeepEqual(r, want) {
				gj, _ := json.Marshal(r)
				wj, _ := json.Marshal(want)
				t.Errorf("backend received %s\nwant %s", gj, wj)
			}
		})
	}

	// What the backend did with them comes back: max_tokens cuts
	// ("length"), a stop string ends the text before it.
	_, body := g.post(t, "/v1/completions", completionBody("a b", `"max_tokens":2`))
	var a answerJSON
	decodeJSON(t, body, &a)
	if *a.Choices[0].Text != "w0 w1" || *a.Choices[0].FinishReason != "length" {
		t.Errorf("max_tokens 2: %s; want %q and length", body, "w0 w1")
	}
	_, body = g.post(t, "/v1/completions", completionBody("a b", `"stop":" w3"`))
	a = answerJSON{}
	decodeJSON(t, body, &a)
	if *a.Choices[0].Text != "w0 w1 w2" || *a.Choices[0].FinishReason != "stop" {
		t.Errorf("stop %q: %s; want %q and stop", " w3", body, "w0 w1 w2")
	}
}
