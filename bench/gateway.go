package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ChatBody is the OpenAI chat request the gateway benchmarks send: one
// short user message, maxTokens of answer, usage asked for when streamed
// (as an executor asks its backend).
func ChatBody(model string, maxTokens int, stream bool) string {
	opts := ""
	if stream {
		opts = `,"stream":true,"stream_options":{"include_usage":true}`
	}
	return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hello"}],"max_tokens":%d%s}`, model, maxTokens, opts)
}

// NewHTTPClient is a keep-alive HTTP client that keeps up to conns idle
// connections to each server (and no bound over all servers, so that
// requests to two servers in turn do not evict each other's connection).
func NewHTTPClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: 0, MaxIdleConnsPerHost: conns,
		IdleConnTimeout: 5 * time.Minute, DisableCompression: true}}
}

// HTTPAnswer posts an OpenAI chat request to baseURL (ending in /v1) with
// nothing but net/http and, when streamed, a line reader: no JSON
// decoding, so that the reader's own cost is the same for every server.
// TTFT is the first "data:" event that carries content (the whole answer,
// when not streamed); Pieces counts such events. onFirst, if not nil, is
// called at the first one. An answer that is not 200, a stream that ends
// without data: [DONE] and an error event are errors.
func HTTPAnswer(ctx context.Context, hc *http.Client, baseURL, body string, stream bool, onFirst func()) (Stream, error) {
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
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return Stream{}, fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	if !stream {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return Stream{}, err
		}
		if !bytes.Contains(b, []byte(`"finish_reason"`)) {
			return Stream{}, fmt.Errorf("answer without finish_reason: %.200s", b)
		}
		_ = w.onText("")
		if onFirst != nil {
			onFirst()
		}
		return w.done(), nil
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		data, ok := bytes.CutPrefix(line, []byte("data: "))
		switch {
		case !ok:
		case bytes.Equal(data, []byte("[DONE]")):
			return w.done(), nil
		case bytes.HasPrefix(data, []byte(`{"error"`)):
			return Stream{}, fmt.Errorf("error event: %.300s", data)
		case bytes.Contains(data, []byte(`"content":"`)) && !bytes.Contains(data, []byte(`"content":""`)):
			if w.pieces == 0 && onFirst != nil {
				onFirst()
			}
			_ = w.onText("")
		}
	}
	if err := sc.Err(); err != nil {
		return Stream{}, err
	}
	return Stream{}, errors.New("stream ended before data: [DONE]")
}

// LoadResult is what one closed-loop run of HTTP requests measured.
type LoadResult struct {
	OK, Failed int
	Failures   map[string]int // by error text
	Wall       time.Duration
	Total      []time.Duration // each answer's time, call to end
	TTFT       []time.Duration // each answer's time to its first content
}

// RunLoad sends requests identical requests to baseURL from clients
// goroutines, each sending its next one as soon as its last is answered.
func RunLoad(ctx context.Context, hc *http.Client, baseURL, body string, stream bool, clients, requests int) LoadResult {
	var next atomic.Int64
	var mu sync.Mutex
	res := LoadResult{Failures: map[string]int{}}
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(requests) {
				s, err := HTTPAnswer(ctx, hc, baseURL, body, stream, nil)
				mu.Lock()
				if err != nil {
					res.Failed++
					res.Failures[errText(err)]++
				} else {
					res.OK++
					res.Total = append(res.Total, s.Total)
					res.TTFT = append(res.TTFT, s.TTFT)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.Wall = time.Since(start)
	return res
}

// Holder holds streamed requests open: each runs to its end, and the
// holder counts the streams that have had their first content.
type Holder struct {
	n       int
	started chan struct{} // one per stream with its first content, or failed
	wg      sync.WaitGroup
	first   atomic.Int64

	mu     sync.Mutex
	res    LoadResult  // guarded by mu
	firsts []time.Time // guarded by mu: when each answer's first content came
}

// Hold starts n streamed requests at once.
func Hold(ctx context.Context, hc *http.Client, baseURL, body string, n int) *Holder {
	h := &Holder{n: n, started: make(chan struct{}, n), res: LoadResult{Failures: map[string]int{}}}
	for range n {
		h.wg.Go(func() {
			got := false
			s, err := HTTPAnswer(ctx, hc, baseURL, body, true, func() {
				got = true
				h.first.Add(1)
				h.started <- struct{}{}
			})
			if !got {
				h.started <- struct{}{}
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			if err != nil {
				h.res.Failed++
				h.res.Failures[errText(err)]++
				return
			}
			h.res.OK++
			h.res.Total = append(h.res.Total, s.Total)
			h.firsts = append(h.firsts, s.Start.Add(s.TTFT))
		})
	}
	return h
}

// WaitStarted waits until every stream has had its first content or
// failed, or for timeout, and returns how many have content.
func (h *Holder) WaitStarted(timeout time.Duration) int {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for range h.n {
		select {
		case <-h.started:
		case <-t.C:
			return int(h.first.Load())
		}
	}
	return int(h.first.Load())
}

// Wait waits for every stream to end and returns the results, with each
// answer's first content counted from since.
func (h *Holder) Wait(since time.Time) LoadResult {
	h.wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range h.firsts {
		h.res.TTFT = append(h.res.TTFT, t.Sub(since))
	}
	return h.res
}

// errText is an error's text, cut to a length that a tally can key on.
func errText(err error) string {
	s := err.Error()
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}
