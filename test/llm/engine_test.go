//go:build llm

package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/test/llm/ollamatest"
)

// What the engine itself answers, asked directly over its
// OpenAI-compatible API: the reference that lloom's answers are compared
// with.

// engineHTTP talks to the loopback engine, never through a proxy.
var engineHTTP = &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}}

type directAnswer struct {
	text             string
	chunks           int
	finish           string
	promptTokens     uint32
	completionTokens uint32
	ttft             time.Duration // request sent to first content
	duration         time.Duration // request sent to [DONE]
}

// directBody is the request the executor should send for req (DESIGN §8,
// backend mapping): the same messages or prompt and sampling parameters,
// streamed with usage.
func directBody(model string, req client.Request) (path string, body map[string]any) {
	body = map[string]any{
		"model":          model,
		"stream":         true,
		"stream_options": map[string]any{"include_usage": true},
	}
	path = "/completions"
	if req.Prompt != "" {
		body["prompt"] = req.Prompt
	} else {
		path = "/chat/completions"
		var msgs []map[string]string
		for _, m := range req.Messages {
			msgs = append(msgs, map[string]string{"role": m.GetRole(), "content": m.GetContent()})
		}
		body["messages"] = msgs
	}
	if req.MaxTokens != nil {
		body["max_tokens"] = *req.MaxTokens
	}
	if req.Temperature != nil {
		body["temperature"] = *req.Temperature
	}
	if req.TopP != nil {
		body["top_p"] = *req.TopP
	}
	if req.Seed != nil {
		body["seed"] = *req.Seed
	}
	if len(req.Stop) > 0 {
		body["stop"] = req.Stop
	}
	return path, body
}

// direct sends req straight to the engine and reads the streamed answer.
func direct(t testing.TB, eng *ollamatest.Engine, req client.Request) directAnswer {
	t.Helper()
	a, done := directStream(t, eng, req)
	if !done {
		t.Fatalf("engine stream ended before [DONE] after %q", a.text)
	}
	return a
}

// directStream is direct for an answer that may end without [DONE]
// (done false).
func directStream(t testing.TB, eng *ollamatest.Engine, req client.Request) (a directAnswer, done bool) {
	t.Helper()
	path, body := directBody(eng.Model(), req)
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), inferTimeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, eng.URL()+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := engineHTTP.Do(hr)
	if err != nil {
		t.Fatalf("POST %s to the engine: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s to the engine: %s: %s", path, resp.Status, msg)
	}
	var text strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			a.duration = time.Since(start)
			a.text = text.String()
			return a, true
		}
		var c struct {
			Choices []struct {
				Text  string `json:"text"`
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *struct {
				PromptTokens     uint32 `json:"prompt_tokens"`
				CompletionTokens uint32 `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("engine sent %q: %v", data, err)
		}
		for _, ch := range c.Choices {
			if s := ch.Text + ch.Delta.Content; s != "" {
				if a.chunks == 0 {
					a.ttft = time.Since(start)
				}
				a.chunks++
				text.WriteString(s)
			}
			if ch.FinishReason != nil && *ch.FinishReason != "" {
				a.finish = *ch.FinishReason
			}
		}
		// Ollama v0.6.5 sends zero usage in every completions chunk; only
		// the last one is real.
		if c.Usage != nil && c.Usage.CompletionTokens > 0 {
			a.promptTokens, a.completionTokens = c.Usage.PromptTokens, c.Usage.CompletionTokens
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading the engine's stream: %v", err)
	}
	a.duration = time.Since(start)
	a.text = text.String()
	return a, false
}

// tokensPerSecond measures the engine's own generation speed with a
// direct answer of n tokens.
func tokensPerSecond(t testing.TB, eng *ollamatest.Engine, n uint32) float64 {
	t.Helper()
	req := chatRequest(eng.Model(), "Measure the engine's speed, please.")
	req.MaxTokens, req.Seed, req.Temperature = &n, ptr(int64(1)), ptr(1.0)
	a := direct(t, eng, req)
	if a.completionTokens != n {
		t.Fatalf("engine generated %d tokens, asked for %d", a.completionTokens, n)
	}
	return float64(n) / a.duration.Seconds()
}

// ginRequest is one request line of the engine's HTTP log, written when
// the handler returned:
//
//	[GIN] 2026/12/01 - 15:02:20 | 200 |    18.31155ms |       127.0.0.1 | POST     "/v1/chat/completions"
type ginRequest struct {
	status   string
	duration time.Duration
	path     string
}

var ginLine = regexp.MustCompile(`^\[GIN\] [^|]+\|\s*(\d{3})\s*\|\s*(\S+)\s*\|\s*\S+\s*\|\s*POST\s+"([^"]+)"`)

// engineLog returns the complete lines of the engine's log.
func engineLog(t testing.TB, eng *ollamatest.Engine) []string {
	t.Helper()
	b, err := os.ReadFile(eng.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	return lines[:len(lines)-1] // the last is empty or still being written
}

// ginRequests returns the POST requests to path the engine logged from
// line from on.
func ginRequests(t testing.TB, eng *ollamatest.Engine, from int, path string) []ginRequest {
	t.Helper()
	var out []ginRequest
	lines := engineLog(t, eng)
	for _, l := range lines[min(from, len(lines)):] {
		m := ginLine.FindStringSubmatch(l)
		if m == nil || m[3] != path {
			continue
		}
		d, err := time.ParseDuration(m[2])
		if err != nil {
			t.Fatalf("engine log line %q: duration: %v", l, err)
		}
		out = append(out, ginRequest{status: m[1], duration: d, path: m[3]})
	}
	return out
}

// waitGin waits until the engine has logged n POST requests to path from
// line from on, and returns them.
func waitGin(t testing.TB, eng *ollamatest.Engine, from, n int, path string, within time.Duration) []ginRequest {
	t.Helper()
	var got []ginRequest
	deadline := time.Now().Add(within)
	for {
		if got = ginRequests(t, eng, from, path); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the engine logged %d of %d requests to %s within %s (the backend call did not end)\n%s",
				len(got), n, path, within, eng.LogTail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (g ginRequest) String() string { return fmt.Sprintf("%s %s in %s", g.status, g.path, g.duration) }
