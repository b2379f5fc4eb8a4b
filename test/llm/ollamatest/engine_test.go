//go:build llm

package ollamatest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lloom/lloom/tools/testmodel"
)

// The tests below talk to the engine with plain net/http and pin down what
// Ollama v0.6.5 really does with the test model, so that tests built on
// top of it can rely on it.

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type chunk struct {
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Text  string `json:"text"` // completions
		Delta struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"delta"` // chat
		Message struct {
			Content string `json:"content"`
		} `json:"message"` // non-streamed chat
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
}

// event is one server-sent "data:" line and when it arrived.
type event struct {
	data string
	at   time.Time
}

func post(t *testing.T, url string, body any) *http.Response {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %s: %s", url, resp.Status, b)
	}
	return resp
}

// stream posts body and collects the SSE data lines up to and including
// "[DONE]".
func stream(t *testing.T, url string, body any) (events []event, start time.Time) {
	t.Helper()
	start = time.Now()
	resp := post(t, url, body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("unexpected SSE line %q", line)
		}
		events = append(events, event{data, time.Now()})
		if data == "[DONE]" {
			break
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return events, start
}

func decode(t *testing.T, data string) chunk {
	t.Helper()
	var c chunk
	if err := json.Unmarshal([]byte(data), &c); err != nil {
		t.Fatalf("chunk %q: %v", data, err)
	}
	return c
}

// streamSummary is what a stream said: its text chunks, the finish reason,
// and the usage of the final usage-only chunk.
type streamSummary struct {
	texts        []string
	finishReason string
	usage        *usage
	firstText    time.Time
}

func summarize(t *testing.T, events []event, chat bool) streamSummary {
	t.Helper()
	if len(events) == 0 || events[len(events)-1].data != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %v", events)
	}
	var s streamSummary
	for i, ev := range events[:len(events)-1] {
		c := decode(t, ev.data)
		if len(c.Choices) == 0 {
			// The usage-only chunk, sent just before [DONE].
			if i != len(events)-2 || c.Usage == nil {
				t.Fatalf("chunk %d without choices: %s", i, ev.data)
			}
			s.usage = c.Usage
			continue
		}
		ch := c.Choices[0]
		text := ch.Text
		if chat {
			text = ch.Delta.Content
		}
		if ch.FinishReason != nil {
			s.finishReason = *ch.FinishReason
			if text != "" {
				t.Errorf("finishing chunk carries text %q", text)
			}
			continue
		}
		if s.finishReason != "" {
			t.Fatalf("chunk after finish_reason: %s", ev.data)
		}
		if text != "" && s.firstText.IsZero() {
			s.firstText = ev.at
		}
		s.texts = append(s.texts, text)
	}
	return s
}

func TestEngine(t *testing.T) {
	e := Start(t)

	t.Run("Models", func(t *testing.T) {
		resp, err := http.Get(e.URL() + "/models")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list struct {
			Object string `json:"object"`
			Data   []struct {
				ID     string `json:"id"`
				Object string `json:"object"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			t.Fatal(err)
		}
		if list.Object != "list" || len(list.Data) != 1 || list.Data[0].ID != e.Model() || list.Data[0].Object != "model" {
			t.Fatalf("GET /v1/models = %+v, want only %s", list, e.Model())
		}
	})

	t.Run("Template", func(t *testing.T) {
		// Ollama recognised the GGUF's chat template as ChatML and stored
		// its Go template and stop parameters with our parameters.
		resp := post(t, e.BaseURL()+"/api/show", map[string]any{"model": e.Model()})
		var show struct {
			Template   string `json:"template"`
			Parameters string `json:"parameters"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&show); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(show.Template, "<|im_start|>{{ .Role }}") {
			t.Errorf("template not autodetected as chatml: %q", show.Template)
		}
		for _, p := range []string{"num_thread", "num_predict", `"<|im_end|>"`} {
			if !strings.Contains(show.Parameters, p) {
				t.Errorf("parameters lack %s: %q", p, show.Parameters)
			}
		}
	})

	t.Run("ChatStreamUsage", func(t *testing.T) {
		const maxTokens = 16
		events, _ := stream(t, e.URL()+"/chat/completions", map[string]any{
			"model":          e.Model(),
			"messages":       []map[string]string{{"role": "user", "content": "Tell me a story."}},
			"stream":         true,
			"stream_options": map[string]any{"include_usage": true},
			"max_tokens":     maxTokens,
		})
		s := summarize(t, events, true)
		// One chunk per token, then a finishing chunk with an empty delta,
		// then a usage chunk with "choices": [], then [DONE].
		if len(s.texts) != maxTokens {
			t.Errorf("%d content chunks, want %d (one per token)", len(s.texts), maxTokens)
		}
		if s.finishReason != "length" {
			t.Errorf("finish_reason %q, want length", s.finishReason)
		}
		if s.usage == nil || s.usage.CompletionTokens != maxTokens || s.usage.PromptTokens == 0 ||
			s.usage.TotalTokens != s.usage.PromptTokens+s.usage.CompletionTokens {
			t.Errorf("usage %+v", s.usage)
		}
		for i, ev := range events[:len(events)-2] {
			if c := decode(t, ev.data); c.Usage != nil {
				t.Errorf("chat chunk %d carries usage (Ollama sends it only in the last chunk)", i)
			}
		}
		t.Logf("chat: %q", strings.Join(s.texts, ""))
	})

	t.Run("ChatStreamWithoutUsage", func(t *testing.T) {
		events, _ := stream(t, e.URL()+"/chat/completions", map[string]any{
			"model":      e.Model(),
			"messages":   []map[string]string{{"role": "user", "content": "hi"}},
			"stream":     true,
			"max_tokens": 3,
		})
		s := summarize(t, events, true)
		if s.usage != nil || len(s.texts) != 3 || s.finishReason != "length" {
			t.Errorf("got %d chunks, finish %q, usage %+v", len(s.texts), s.finishReason, s.usage)
		}
	})

	t.Run("CompletionsStreamUsage", func(t *testing.T) {
		const maxTokens = 12
		events, _ := stream(t, e.URL()+"/completions", map[string]any{
			"model":          e.Model(),
			"prompt":         "Once upon a time",
			"stream":         true,
			"stream_options": map[string]any{"include_usage": true},
			"max_tokens":     maxTokens,
		})
		s := summarize(t, events, false)
		if len(s.texts) != maxTokens || s.finishReason != "length" {
			t.Errorf("%d text chunks, finish %q", len(s.texts), s.finishReason)
		}
		if s.usage == nil || s.usage.CompletionTokens != maxTokens || s.usage.PromptTokens == 0 {
			t.Errorf("usage %+v", s.usage)
		}
		// Ollama v0.6.5 quirk: with include_usage every completions chunk
		// carries "usage" with zeros, not null; only the last is real.
		first := decode(t, events[0].data)
		if first.Usage == nil || *first.Usage != (usage{}) {
			t.Errorf("first completions chunk usage %+v; Ollama v0.6.5 sends zeros", first.Usage)
		}
		t.Logf("completion: %q", strings.Join(s.texts, ""))
	})

	t.Run("MaxTokens", func(t *testing.T) {
		resp := post(t, e.URL()+"/chat/completions", map[string]any{
			"model":      e.Model(),
			"messages":   []map[string]string{{"role": "user", "content": "Count to ten."}},
			"max_tokens": 5,
		})
		c := decodeBody(t, resp)
		if len(c.Choices) != 1 || c.Choices[0].FinishReason == nil || *c.Choices[0].FinishReason != "length" {
			t.Fatalf("choices %+v", c.Choices)
		}
		if c.Usage == nil || c.Usage.CompletionTokens != 5 {
			t.Errorf("usage %+v, want completion_tokens 5", c.Usage)
		}
		if n := len(strings.Fields(c.Choices[0].Message.Content)); n < 1 || n > 5 {
			t.Errorf("content %q", c.Choices[0].Message.Content)
		}
	})

	t.Run("DefaultNumPredict", func(t *testing.T) {
		// No max_tokens: the model never ends by itself, so the
		// num_predict model parameter bounds the answer.
		resp := post(t, e.URL()+"/chat/completions", map[string]any{
			"model":    e.Model(),
			"messages": []map[string]string{{"role": "user", "content": "Go on forever."}},
		})
		c := decodeBody(t, resp)
		if c.Usage == nil || c.Usage.CompletionTokens != testmodel.DefaultNumPredict ||
			*c.Choices[0].FinishReason != "length" {
			t.Errorf("usage %+v finish %v, want %d tokens and length", c.Usage, *c.Choices[0].FinishReason, testmodel.DefaultNumPredict)
		}
	})

	t.Run("SeededDeterminism", func(t *testing.T) {
		answer := func(path string, body map[string]any) string {
			c := decodeBody(t, post(t, e.URL()+path, body))
			return c.Choices[0].Message.Content + c.Choices[0].Text
		}
		for _, tc := range []struct {
			path string
			body map[string]any
		}{
			{"/chat/completions", map[string]any{"messages": []map[string]string{{"role": "user", "content": "Same again?"}}}},
			{"/completions", map[string]any{"prompt": "Same again?"}},
		} {
			tc.body["model"] = e.Model()
			tc.body["seed"] = 42
			tc.body["temperature"] = 0
			tc.body["max_tokens"] = 24
			a, b := answer(tc.path, tc.body), answer(tc.path, tc.body)
			if a != b || a == "" {
				t.Errorf("%s: seed 42, temperature 0 gave %q then %q", tc.path, a, b)
			}

			// Sampling at temperature 1 is reproducible too, given the seed.
			tc.body["temperature"] = 1
			a, b = answer(tc.path, tc.body), answer(tc.path, tc.body)
			tc.body["seed"] = 43
			c := answer(tc.path, tc.body)
			if a != b {
				t.Errorf("%s: seed 42, temperature 1 gave %q then %q", tc.path, a, b)
			}
			if a == c {
				t.Errorf("%s: seeds 42 and 43 at temperature 1 both gave %q", tc.path, a)
			}
		}
	})

	t.Run("Measure", func(t *testing.T) {
		const n = 64
		for i := 0; i < 3; i++ {
			events, start := stream(t, e.URL()+"/chat/completions", map[string]any{
				"model":          e.Model(),
				"messages":       []map[string]string{{"role": "user", "content": fmt.Sprintf("Measure run %d, please.", i)}},
				"stream":         true,
				"stream_options": map[string]any{"include_usage": true},
				"max_tokens":     n,
			})
			s := summarize(t, events, true)
			end := events[len(events)-1].at
			if s.usage == nil || s.usage.CompletionTokens != n {
				t.Fatalf("usage %+v", s.usage)
			}
			ttft := s.firstText.Sub(start)
			gen := end.Sub(s.firstText)
			t.Logf("%d-token chat answer: TTFT %v, total %v, %.0f tokens/s after the first token",
				n, ttft.Round(time.Microsecond), end.Sub(start).Round(time.Microsecond),
				float64(n-1)/gen.Seconds())
		}
	})
}

func decodeBody(t *testing.T, resp *http.Response) chunk {
	t.Helper()
	var c chunk
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	if len(c.Choices) == 0 {
		t.Fatalf("no choices")
	}
	return c
}

func TestKillRestart(t *testing.T) {
	e := Start(t)
	url := e.URL()
	ask := func() error {
		b, _ := json.Marshal(map[string]any{
			"model":      e.Model(),
			"messages":   []map[string]string{{"role": "user", "content": "ping"}},
			"max_tokens": 2,
		})
		resp, err := http.Post(url+"/chat/completions", "application/json", bytes.NewReader(b))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	}
	if err := ask(); err != nil {
		t.Fatal(err)
	}

	e.Kill()
	if e.Running() {
		t.Fatal("still running after Kill")
	}
	if err := ask(); err == nil {
		t.Fatal("request succeeded with the engine killed")
	} else {
		t.Logf("while down: %v", err)
	}

	start := time.Now()
	e.Restart(t)
	t.Logf("restart with model load: %v", time.Since(start).Round(time.Millisecond))
	if e.URL() != url {
		t.Fatalf("URL changed across restart: %s -> %s", url, e.URL())
	}
	if err := ask(); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}
