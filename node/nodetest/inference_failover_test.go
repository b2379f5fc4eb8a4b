package nodetest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/node/executor"
	. "github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/pkg/backend/backendtest"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// hangGuard bounds waits that must end "at once" or "within about a
// second": it catches hangs, it is not a performance claim.
const hangGuard = 5 * time.Second

// A failure before the first chunk moves on to the next executor: the one
// tried first was killed, its backend was down, or it was full. The answer
// is complete, from the other one, and the attempts say what happened.
func TestFailoverBeforeFirstChunk(t *testing.T) {
	tests := []struct {
		name     string
		capacity uint32
		queue    uint32
		breakIt  func(t *testing.T, bad *executor.Executor, fake *backendtest.Fake, c *client.Client)
		check    func(t *testing.T, a client.Attempt)
	}{
		{"killed", 2, 2, func(t *testing.T, bad *executor.Executor, _ *backendtest.Fake, _ *client.Client) {
			bad.Host().Close() // no REMOVAL: the validator still lists it
		}, func(t *testing.T, a client.Attempt) {
			if !errors.Is(a.Err, client.ErrUnreachable) {
				t.Fatalf("first attempt: %v, want unreachable", a.Err)
			}
		}},
		{"backend down", 2, 2, func(t *testing.T, _ *executor.Executor, fake *backendtest.Fake, _ *client.Client) {
			fake.SetDown(true)
		}, func(t *testing.T, a client.Attempt) {
			if a.Code != lp.ErrBackendFailed.Code {
				t.Fatalf("first attempt: %v (%v), want 6003", a.Code, a.Err)
			}
		}},
		{"full", 1, 0, func(t *testing.T, bad *executor.Executor, fake *backendtest.Fake, c *client.Client) {
			release := fake.Block()
			t.Cleanup(release)
			x := candidates(t, c, "m1")[bad.ID()]
			inferOnAsync(t.Context(), c, []*client.Executor{x}, chatRequest("m1", "hold the only slot"), nil)
			fake.WaitActive(t, 1, Timeout)
		}, func(t *testing.T, a client.Attempt) {
			if a.Code != lp.ErrOverloaded.Code || a.RetryAfter <= 0 {
				t.Fatalf("first attempt: %v (%v) retry %v, want 6002 with a retry hint", a.Code, a.Err, a.RetryAfter)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := StartValidator(t, nil)
			badFake := backendtest.New(t, backendtest.WithModels("m1"))
			goodFake := backendtest.New(t, backendtest.WithModels("m1"))
			serving := func(c *executor.Config) {
				c.Serving = map[string]executor.ModelServing{"m1": {Queue: uint32p(tt.queue)}}
			}
			bad := startServing(t, v, badFake, []*pb.ModelDescriptor{Model("m1", tt.capacity)}, serving)
			good := startServing(t, v, goodFake, []*pb.ModelDescriptor{Model("m1", tt.capacity)}, serving)
			c := NewClient(t, v)
			// Both are idle: Choose picks either first at random; the test
			// fixes the order so that the broken one is tried first.
			cs := candidates(t, c, "m1")
			order := []*client.Executor{cs[bad.ID()], cs[good.ID()]}
			tt.breakIt(t, bad, badFake, c)

			ans, err := c.InferOn(context.Background(), order, chatRequest("m1", "hi"), nil, nil, time.Now())
			if err != nil {
				t.Fatalf("infer: %v (attempts %+v)", err, ans.Attempts)
			}
			if ans.Executor != good.ID() || ans.Text != "w0 w1 w2 w3 w4 w5 w6 w7" || ans.Receipt == nil {
				t.Fatalf("answer from %s: %q; want the whole answer from %s", ans.Executor, ans.Text, good.ID())
			}
			if len(ans.Attempts) != 2 || ans.Attempts[0].Executor != bad.ID() || ans.Attempts[1].Executor != good.ID() ||
				ans.Attempts[1].Err != nil || ans.Attempts[1].Code != 0 {
				t.Fatalf("attempts %+v: want the failed one, then the answer", ans.Attempts)
			}
			tt.check(t, ans.Attempts[0])
		})
	}
}

// After the first chunk a failure is reported, not retried, with the text
// that arrived: whether the executor's host closes its connections, or the
// executor goes silent (the client's ping watch notices).
func TestFailureAfterFirstChunk(t *testing.T) {
	for _, silent := range []bool{false, true} {
		name := map[bool]string{false: "connection closed", true: "silent"}[silent]
		t.Run(name, func(t *testing.T) {
			v, _ := StartValidator(t, nil)
			fake := backendtest.New(t, backendtest.WithModels("m1"), backendtest.WithDelay(0, time.Hour))
			other := backendtest.New(t, backendtest.WithModels("m1"))
			e := startServing(t, v, fake, []*pb.ModelDescriptor{Model("m1", 2)}, nil)
			spare := startServing(t, v, other, []*pb.ModelDescriptor{Model("m1", 2)}, nil)
			c := NewClient(t, v)
			cs := candidates(t, c, "m1")
			x := cs[e.ID()]
			var p *proxy
			if silent {
				p = newProxy(t, e.Host())
				x = p.via(x)
			}
			got := newChunks()
			done := inferOnAsync(context.Background(), c, []*client.Executor{x, cs[spare.ID()]}, chatRequest("m1", "hi"), got.onText)
			got.waitFirst(t)
			died := time.Now()
			if silent {
				p.Freeze()
			} else {
				e.Host().Close()
			}
			r := await(t, hangGuard, done)
			t.Logf("failure reported %s after the executor died: %v", time.Since(died).Round(time.Millisecond), r.err)
			if r.err == nil {
				t.Fatal("answer cut after its first chunk reported no error")
			}
			if r.ans.Text != "w0" || r.ans.Receipt != nil || r.ans.Executor != e.ID() {
				t.Fatalf("answer %q from %s (receipt %v): want the partial text \"w0\" from %s, unpaid", r.ans.Text, r.ans.Executor, r.ans.Receipt, e.ID())
			}
			if len(r.ans.Attempts) != 1 || len(other.Requests()) != 0 {
				t.Fatalf("attempts %+v: a failure after the first chunk must not be retried", r.ans.Attempts)
			}
		})
	}
}

// An executor shutting down mid-answer ends it with 5000, which the client
// reports with the partial text.
func TestShutdownMidAnswerSends5000(t *testing.T) {
	v, _ := StartValidator(t, nil)
	fake := backendtest.New(t, backendtest.WithModels("m1"), backendtest.WithDelay(0, time.Hour))
	e := startServing(t, v, fake, []*pb.ModelDescriptor{Model("m1", 2)}, nil)
	c := NewClient(t, v)
	got := newChunks()
	done := inferAsync(context.Background(), c, chatRequest("m1", "hi"), got.onText)
	got.waitFirst(t)
	go e.Close()
	r := await(t, hangGuard, done)
	wantCode(t, "answer cut by shutdown", r.err, lp.ErrInternal.Code)
	if r.ans.Text != "w0" || len(r.ans.Attempts) != 1 || r.ans.Attempts[0].Code != lp.ErrInternal.Code {
		t.Fatalf("answer %q attempts %+v: want the partial text and one attempt ending 5000", r.ans.Text, r.ans.Attempts)
	}
	fake.WaitCancelled(t, 1, hangGuard)
}

// Closing an executor while requests keep arriving is clean: streams that
// arrive during the shutdown are refused, Close returns, and every request
// ends. The race detector watches the count of answers in flight (it has
// caught, now and then, an Add racing with Close's Wait).
func TestCloseWhileRequestsArrive(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithModels("m1"))
	v, _ := StartValidator(t, nil)
	e := startServing(t, v, fake, []*pb.ModelDescriptor{Model("m1", 8)}, func(c *executor.Config) { c.InferenceRate = 0 })
	c := NewClient(t, v)
	order := []*client.Executor{candidates(t, c, "m1")[e.ID()]}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
				_, _ = c.InferOn(ctx, order, chatRequest("m1", "hi"), nil, nil, time.Now())
				cancel()
			}
		})
	}
	Eventually(t, "requests flowing", func() error {
		if n := len(fake.Requests()); n < 20 {
			return fmt.Errorf("%d requests so far", n)
		}
		return nil
	})
	closed := make(chan error, 1)
	go func() { closed <- e.Close() }()
	select {
	case <-closed:
	case <-time.After(Timeout):
		t.Fatal("Close did not return while requests kept arriving")
	}
	close(stop)
	wg.Wait()
}
