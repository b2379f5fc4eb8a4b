package nodetest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/node/executor"
	. "github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/pkg/backend/backendtest"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// startServing starts an executor serving models from fake and waits until
// v has registered it with all of them.
func startServing(t *testing.T, v *validator.Validator, fake *backendtest.Fake, models []*pb.ModelDescriptor, mutate func(*executor.Config)) *executor.Executor {
	t.Helper()
	e, _ := StartExecutor(t, []*validator.Validator{v}, models, func(c *executor.Config) {
		c.Backend.URL = fake.URL()
		if mutate != nil {
			mutate(c)
		}
	})
	var ids []string
	for _, m := range models {
		ids = append(ids, m.GetModelId())
	}
	Eventually(t, "executor registered", Registered(v, e.ID(), ids...))
	return e
}

// chatRequest asks model one user question.
func chatRequest(model, content string) client.Request {
	return client.Request{Model: model, Messages: []*pb.ChatMessage{{Role: "user", Content: content}}}
}

// chunks records the text pieces an answer streams, safely for the test
// goroutine to read while the answer runs; first is closed by the first.
type chunks struct {
	mu    sync.Mutex
	got   []string
	first chan struct{}
}

func newChunks() *chunks { return &chunks{first: make(chan struct{})} }

func (c *chunks) onText(s string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, s)
	if len(c.got) == 1 {
		close(c.first)
	}
	return nil
}

func (c *chunks) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

// waitFirst fails t unless the first chunk arrives in time.
func (c *chunks) waitFirst(t *testing.T) {
	t.Helper()
	select {
	case <-c.first:
	case <-time.After(Timeout):
		t.Fatal("no chunk of the answer arrived")
	}
}

// result is what one Infer call ended with.
type result struct {
	ans *client.Answer
	err error
}

// inferAsync runs c.Infer in the background.
func inferAsync(ctx context.Context, c *client.Client, req client.Request, onText func(string) error) <-chan result {
	out := make(chan result, 1)
	go func() {
		ans, err := c.Infer(ctx, req, onText)
		out <- result{ans, err}
	}()
	return out
}

// inferOnAsync runs c.InferOn with a fixed order in the background.
func inferOnAsync(ctx context.Context, c *client.Client, order []*client.Executor, req client.Request, onText func(string) error) <-chan result {
	out := make(chan result, 1)
	go func() {
		ans, err := c.InferOn(ctx, order, req, onText, nil, time.Now())
		out <- result{ans, err}
	}()
	return out
}

// await returns the result of an answer, failing t if it takes longer
// than within (a hang guard, not a performance claim).
func await(t *testing.T, within time.Duration, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(within):
		t.Fatalf("no result within %s: the request hangs", within)
		return result{}
	}
}

// candidates returns the executors v lists for model, as the client sees
// them (signed addresses, load), by peer id.
func candidates(t *testing.T, c *client.Client, model string) map[peer.ID]*client.Executor {
	t.Helper()
	found, err := c.FindModel(context.Background(), model, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[peer.ID]*client.Executor{}
	for _, x := range found.Executors {
		out[x.PeerID] = x
	}
	return out
}

// entry is v's current view of executor id (status and load).
func entry(v *validator.Validator, id peer.ID) (*pb.ExecutorEntry, error) {
	ent, ok := v.Registry().Get(id, time.Now())
	if !ok {
		return nil, fmt.Errorf("executor %s not registered", id)
	}
	return ent, nil
}

// seesLoad is a condition: v holds this load for id's model.
func seesLoad(v *validator.Validator, id peer.ID, model string, active, queued uint32) func() error {
	return func() error {
		ent, err := entry(v, id)
		if err != nil {
			return err
		}
		for _, l := range ent.GetLoad().GetModels() {
			if l.GetModelId() == model {
				if l.GetActive() != active || l.GetQueued() != queued {
					return fmt.Errorf("validator sees %d active, %d queued; want %d, %d", l.GetActive(), l.GetQueued(), active, queued)
				}
				return nil
			}
		}
		return fmt.Errorf("validator has no load for %q", model)
	}
}

// seesStatus is a condition: v classifies id as want.
func seesStatus(v *validator.Validator, id peer.ID, want pb.ExecutorStatus) func() error {
	return func() error {
		ent, err := entry(v, id)
		if err != nil {
			return err
		}
		if ent.GetStatus() != want {
			return fmt.Errorf("validator sees %v, want %v", ent.GetStatus(), want)
		}
		return nil
	}
}

// seesAvailable is a condition: id's signed announcement held by v lists
// model with available = want.
func seesAvailable(v *validator.Validator, id peer.ID, model string, want bool) func() error {
	return func() error {
		ent, err := entry(v, id)
		if err != nil {
			return err
		}
		s, err := lp.OpenAnnouncement(ent.GetAnnouncementEnvelope())
		if err != nil {
			return err
		}
		for _, m := range s.Announcement().GetModels() {
			if m.GetModelId() == model {
				if m.GetAvailable() != want {
					return fmt.Errorf("model %q announced available=%v, want %v", model, m.GetAvailable(), want)
				}
				return nil
			}
		}
		return fmt.Errorf("model %q not in the announcement", model)
	}
}

// idle is a condition: the executor runs and queues nothing for model.
func idle(e *executor.Executor, model string) func() error {
	return func() error {
		if l := e.Load()[model]; l.Active != 0 || l.Queued != 0 {
			return fmt.Errorf("executor load %d active, %d queued; want none", l.Active, l.Queued)
		}
		return nil
	}
}

// rawHost is a bare libp2p host that dials only: a client that speaks the
// inference protocol by hand (or misbehaves).
func rawHost(t *testing.T) host.Host {
	t.Helper()
	h, err := node.NewHost(node.HostConfig{Key: Key(t), UserAgent: "nodetest-raw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// wantCode fails t unless err carries the wire code want.
func wantCode(t *testing.T, what string, err error, want pb.ErrorCode) {
	t.Helper()
	if got := client.CodeOf(err); got != want {
		t.Fatalf("%s: code %v (%v), want %v", what, got, err, want)
	}
}

// noOpenStreams is a condition: h holds no inference stream with p. Only
// Close or Reset frees a go-libp2p stream; one left open counts against
// the peer's stream limit until the connection ends.
func noOpenStreams(h host.Host, p peer.ID) func() error {
	return func() error {
		n := 0
		for _, c := range h.Network().ConnsToPeer(p) {
			for _, s := range c.GetStreams() {
				if s.Protocol() == lp.InferenceProtocol {
					n++
				}
			}
		}
		if n != 0 {
			return fmt.Errorf("%s holds %d inference streams with %s", h.ID(), n, p)
		}
		return nil
	}
}

func uint32p(v uint32) *uint32 { return &v }
