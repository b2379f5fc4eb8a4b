package backendtest

import (
	"testing"
	"time"
)

// Message is one chat message as received.
type Message struct {
	Role    string
	Content string
}

// Received is one completion request as the fake decoded it. Pointers are
// nil when the field was absent.
type Received struct {
	Path          string // /v1/chat/completions or /v1/completions
	Authorization string // the header, verbatim
	Model         string
	Messages      []Message
	Prompt        string
	MaxTokens     *uint32
	Temperature   *float64
	TopP          *float64
	Stop          []string // a single string is received as one element
	Seed          *int64
	Stream        bool
	IncludeUsage  bool // stream_options.include_usage
}

// stats is what the fake counts; Fake.mu guards it.
type stats struct {
	requests  []Received
	active    int
	peak      int
	cancelled int
	changed   chan struct{} // closed and replaced whenever a count changes
}

func (s *stats) init() { s.changed = make(chan struct{}) }

// notify wakes the waiters; call with Fake.mu held.
func (s *stats) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Requests returns every decodable completion request received since the
// start or the last ResetStats, in arrival order.
func (f *Fake) Requests() []Received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Received(nil), f.requests...)
}

// Active returns the number of completion requests being handled now,
// including those held by Block or waiting in a delay.
func (f *Fake) Active() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active
}

// Peak returns the highest Active since the start or the last ResetStats.
func (f *Fake) Peak() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.peak
}

// Cancelled returns the number of completion requests whose client went
// away (its context ended, or a write failed) before the fake finished.
func (f *Fake) Cancelled() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cancelled
}

// ResetStats forgets the requests received, the cancellations and the
// peak (which restarts at the current Active).
func (f *Fake) ResetStats() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests, f.cancelled, f.peak = nil, 0, f.active
	f.notify()
}

// WaitCancelled fails t unless Cancelled reaches n within the given time.
func (f *Fake) WaitCancelled(t testing.TB, n int, within time.Duration) {
	t.Helper()
	if !f.waitFor(within, func() bool { return f.cancelled >= n }) {
		t.Fatalf("backendtest: %d requests cancelled after %v, want %d", f.Cancelled(), within, n)
	}
}

// WaitActive fails t unless Active reaches exactly n within the given
// time; with Block it tells a test that n streams are being held.
func (f *Fake) WaitActive(t testing.TB, n int, within time.Duration) {
	t.Helper()
	if !f.waitFor(within, func() bool { return f.active == n }) {
		t.Fatalf("backendtest: %d requests active after %v, want %d", f.Active(), within, n)
	}
}

// waitFor waits until cond (called with f.mu held) holds, without polling:
// every change of a count wakes it.
func (f *Fake) waitFor(within time.Duration, cond func() bool) bool {
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		f.mu.Lock()
		ok, changed := cond(), f.changed
		f.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-changed:
		case <-timer.C:
			return false
		}
	}
}

// begin and end bracket one completion request.
func (f *Fake) begin() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active++
	f.peak = max(f.peak, f.active)
	f.notify()
}

func (f *Fake) end(cancelled bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active--
	if cancelled {
		f.cancelled++
	}
	f.notify()
}

func (f *Fake) record(r Received) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r)
}
