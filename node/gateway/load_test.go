package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lloom/lloom/pkg/backend/backendtest"
)

// One gateway is one peer to the validators and executors: 100 streams
// at once through it all complete, each backend within its capacity.
func TestHundredConcurrentStreams(t *testing.T) {
	const capacity = 40
	tokens := make([]string, 10)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("t%d ", i)
	}
	v := startValidator(t, nil)
	var fakes []*backendtest.Fake
	for range 3 {
		f := backendtest.New(t, backendtest.WithModels(model), backendtest.WithTokens(tokens...), backendtest.WithDelay(0, 5*time.Millisecond))
		serve(t, v, f, capacity, nil)
		fakes = append(fakes, f)
	}
	g := startGateway(t, v, nil)

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0}, Timeout: 2 * within}
	defer client.CloseIdleConnections()
	for i := range 100 {
		wg.Go(func() {
			// No t.Fatal here: this is not the test's goroutine.
			if err := streamOnce(client, g.url, chatBody(fmt.Sprintf("request %d", i), `"stream":true`), strings.Join(tokens, "")); err != nil {
				errs <- fmt.Errorf("stream %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := 0
	var per, peaks []int
	for _, f := range fakes {
		n := len(f.Requests())
		total += n
		per, peaks = append(per, n), append(peaks, f.Peak())
		if f.Peak() > capacity {
			t.Errorf("a backend held %d requests at once; its executor's capacity is %d", f.Peak(), capacity)
		}
	}
	if total != 100 {
		t.Errorf("the backends received %d requests, want 100", total)
	}
	t.Logf("100 streams in %v; requests per backend %v, peaks %v", time.Since(start).Round(time.Millisecond), per, peaks)
}

// streamOnce sends one streamed chat and checks that its text is want and
// that it ends with [DONE].
func streamOnce(c *http.Client, url, body, want string) error {
	resp, err := c.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading the stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var text strings.Builder
	var last string
	for _, line := range strings.Split(string(b), "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		last = data
		var c answerJSON
		if data == "[DONE]" || json.Unmarshal([]byte(data), &c) != nil {
			continue
		}
		for _, ch := range c.Choices {
			if ch.Delta != nil && ch.Delta.Content != nil {
				text.WriteString(*ch.Delta.Content)
			}
		}
	}
	if last != "[DONE]" || text.String() != want {
		return fmt.Errorf("text %q, last event %s; want %q and [DONE]", text.String(), last, want)
	}
	return nil
}
