package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/pkg/backend"
	"github.com/lloom/lloom/protocol/pb"
)

// Stream is the timing of one streamed answer: from the call to the first
// text and to the end, and how many text pieces arrived.
type Stream struct {
	Start  time.Time
	TTFT   time.Duration
	Total  time.Duration
	Pieces int
}

// stopwatch times a stream from start: its onText records the first text.
type stopwatch struct {
	start  time.Time
	first  time.Duration
	pieces int
}

func newStopwatch() *stopwatch { return &stopwatch{start: time.Now()} }

func (w *stopwatch) onText(string) error {
	if w.pieces == 0 {
		w.first = time.Since(w.start)
	}
	w.pieces++
	return nil
}

func (w *stopwatch) done() Stream {
	return Stream{Start: w.start, TTFT: w.first, Total: time.Since(w.start), Pieces: w.pieces}
}

// Direct streams req straight from the backend with pkg/backend's client,
// as an executor does: the baseline lloom's path is compared with.
func Direct(ctx context.Context, bc *backend.Client, req backend.Request) (Stream, error) {
	w := newStopwatch()
	_, err := bc.Stream(ctx, req, w.onText)
	return w.done(), err
}

// Through streams req through lloom to the executors in order (the warm
// path: candidates already known, connection already open).
func Through(ctx context.Context, c *client.Client, order []*client.Executor, req client.Request) (Stream, *client.Answer, error) {
	w := newStopwatch()
	ans, err := c.InferOn(ctx, order, req, w.onText, nil, w.start)
	return w.done(), ans, err
}

// Cold streams req through lloom with everything found on the way: the
// validator query, the choice, the dial and the request.
func Cold(ctx context.Context, c *client.Client, req client.Request) (Stream, *client.Answer, error) {
	w := newStopwatch()
	ans, err := c.Infer(ctx, req, w.onText)
	return w.done(), ans, err
}

// RawHTTP streams req from an OpenAI-compatible chat endpoint with nothing
// but net/http and a line reader: no JSON decoding. It times the first
// "data:" line that carries content and the end of the body, a floor
// that tells the backend's own speed from its client's.
func RawHTTP(ctx context.Context, hc *http.Client, baseURL, model string, maxTokens int) (Stream, error) {
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hello"}],"max_tokens":%d,"stream":true,"stream_options":{"include_usage":true}}`, model, maxTokens)
	w := newStopwatch()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/chat/completions", strings.NewReader(body))
	if err != nil {
		return Stream{}, err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(hr)
	if err != nil {
		return Stream{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Stream{}, fmt.Errorf("raw http: status %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.Equal(line, []byte("data: [DONE]")) {
			return w.done(), nil
		}
		if bytes.HasPrefix(line, []byte("data:")) && bytes.Contains(line, []byte(`"content":"`)) && !bytes.Contains(line, []byte(`"content":""`)) {
			_ = w.onText("")
		}
	}
	if err := sc.Err(); err != nil {
		return Stream{}, err
	}
	return Stream{}, fmt.Errorf("raw http: stream ended before [DONE]")
}

// chatRequest is the request every inference benchmark sends: one short
// user message, maxTokens of answer (0: the backend's default length).
func chatRequest(model string, maxTokens uint32) (client.Request, backend.Request) {
	cr := client.Request{Model: model, Messages: []*pb.ChatMessage{{Role: "user", Content: "hello"}}}
	br := backend.Request{Model: model, Messages: []backend.Message{{Role: "user", Content: "hello"}}}
	if maxTokens > 0 {
		cr.MaxTokens, br.MaxTokens = &maxTokens, &maxTokens
	}
	return cr, br
}

// Ratio is a/b, 0 when b is 0.
func Ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// perSecond is n per d in units per second.
func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
