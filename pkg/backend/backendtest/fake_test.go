package backendtest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lloom/lloom/pkg/backend/backendtest"
)

const within = 10 * time.Second

const chatBody = `{"model":"test-model","messages":[{"role":"user","content":"hello there"}],"stream":true,"stream_options":{"include_usage":true}}`

func post(t *testing.T, ctx context.Context, url, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// chunk is the union of the chunk shapes the tests look at.
type chunk struct {
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Delta struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		Message      struct{ Content string } `json:"message"`
		Text         *string                  `json:"text"`
		FinishReason *string                  `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

// readEvents returns every data payload of an SSE body, in order.
func readEvents(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, p)
		} else if sc.Text() != "" {
			t.Fatalf("unexpected line %q", sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func decode(t *testing.T, payload string) chunk {
	t.Helper()
	var c chunk
	if err := json.Unmarshal([]byte(payload), &c); err != nil {
		t.Fatalf("chunk %q: %v", payload, err)
	}
	return c
}

// summary is what a client makes of a stream: text, finish reason, usage.
func summary(t *testing.T, events []string) (text, finish string, prompt, completion int, done bool) {
	t.Helper()
	prompt, completion = -1, -1
	for _, e := range events {
		if e == "[DONE]" {
			done = true
			continue
		}
		c := decode(t, e)
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				text += *ch.Delta.Content
			}
			if ch.Text != nil {
				text += *ch.Text
			}
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
		if c.Usage != nil {
			prompt, completion = c.Usage.PromptTokens, c.Usage.CompletionTokens
		}
	}
	return
}

func TestChatStreamShape(t *testing.T) {
	f := backendtest.New(t)
	resp := post(t, t.Context(), f.URL()+"/chat/completions", chatBody)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := readEvents(t, resp.Body)
	first := decode(t, events[0])
	if first.Object != "chat.completion.chunk" || first.Model != "test-model" || first.Choices[0].Delta.Role != "assistant" {
		t.Fatalf("first chunk %s: want a chat.completion.chunk with the assistant role", events[0])
	}
	last := decode(t, events[len(events)-2])
	if len(last.Choices) != 0 || last.Usage == nil {
		t.Fatalf("usage chunk %s: want empty choices and usage", events[len(events)-2])
	}
	text, finish, prompt, completion, done := summary(t, events)
	if text != "w0 w1 w2 w3 w4 w5 w6 w7" || finish != "stop" || prompt != 2 || completion != 8 || !done {
		t.Fatalf("got %q finish %q usage %d/%d done %v", text, finish, prompt, completion, done)
	}
	// 1 role chunk + 8 tokens + finish + usage + [DONE]
	if len(events) != 12 {
		t.Fatalf("%d events, want 12: %q", len(events), events)
	}
}

func TestCompletionStreamShape(t *testing.T) {
	f := backendtest.New(t)
	resp := post(t, t.Context(), f.URL()+"/completions",
		`{"model":"test-model","prompt":"one two three","max_tokens":3,"stream":true,"stream_options":{"include_usage":true}}`)
	events := readEvents(t, resp.Body)
	if c := decode(t, events[0]); c.Object != "text_completion" || c.Choices[0].Text == nil {
		t.Fatalf("first chunk %s: want a text_completion with choices[0].text", events[0])
	}
	text, finish, prompt, completion, done := summary(t, events)
	if text != "w0 w1 w2" || finish != "length" || prompt != 3 || completion != 3 || !done {
		t.Fatalf("got %q finish %q usage %d/%d done %v", text, finish, prompt, completion, done)
	}
}

func TestNotStreamed(t *testing.T) {
	f := backendtest.New(t)
	f.SetTokens([]string{"Hel", "lo"})
	for _, tt := range []struct{ path, body, object string }{
		{"/chat/completions", `{"model":"test-model","messages":[{"role":"user","content":"a b c d"}]}`, "chat.completion"},
		{"/completions", `{"model":"test-model","prompt":"a b c d"}`, "text_completion"},
	} {
		resp := post(t, t.Context(), f.URL()+tt.path, tt.body)
		body, _ := io.ReadAll(resp.Body)
		c := decode(t, string(body))
		text := c.Choices[0].Message.Content
		if c.Choices[0].Text != nil {
			text = *c.Choices[0].Text
		}
		if c.Object != tt.object || text != "Hello" || c.Usage == nil || c.Usage.PromptTokens != 4 || c.Usage.CompletionTokens != 2 {
			t.Errorf("%s: %s", tt.path, body)
		}
	}
}

func TestRefusals(t *testing.T) {
	f := backendtest.New(t, backendtest.WithAPIKey("sk-1"))
	tests := []struct {
		name, path, auth, body string
		status                 int
		wantInBody             string
	}{
		{"unknown model", "/chat/completions", "Bearer sk-1", `{"model":"x","messages":[{"role":"user","content":"hi"}]}`, 404, `"message":"model \"x\" not found","type":"invalid_request_error","param":null,"code":"model_not_found"`},
		{"bad JSON", "/chat/completions", "Bearer sk-1", `{"model":`, 400, `"type":"invalid_request_error"`},
		{"no messages", "/chat/completions", "Bearer sk-1", `{"model":"test-model"}`, 400, "messages"},
		{"no key", "/completions", "", `{"model":"test-model","prompt":"x"}`, 401, "invalid_api_key"},
		{"wrong key", "/completions", "Bearer sk-2", `{"model":"test-model","prompt":"x"}`, 401, "invalid_api_key"},
		{"unknown path", "/embeddings", "Bearer sk-1", `{}`, 404, "no route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, f.URL()+tt.path, strings.NewReader(tt.body))
			req.Header.Set("Authorization", tt.auth)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.wantInBody) {
				t.Fatalf("got %d %s; want %d with %s", resp.StatusCode, body, tt.status, tt.wantInBody)
			}
		})
	}
}

func TestModels(t *testing.T) {
	f := backendtest.New(t)
	f.SetModels("a", "b")
	resp, err := http.Get(f.URL() + "/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Object string
		Data   []struct{ ID string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if list.Object != "list" || len(list.Data) != 2 || list.Data[0].ID != "a" || list.Data[1].ID != "b" {
		t.Fatalf("got %+v, want a list of a, b", list)
	}
	if resp := post(t, t.Context(), f.URL()+"/completions", `{"model":"test-model","prompt":"x"}`); resp.StatusCode != 404 {
		t.Fatalf("test-model after SetModels(a, b): status %d, want 404", resp.StatusCode)
	}
}
