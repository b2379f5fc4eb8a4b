package nodetest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/node/executor"
	. "github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/pkg/backend/backendtest"
	"github.com/lloom/lloom/protocol/pb"
)

// cancelWithin bounds how long a backend call outlives its client: the
// contract says a second (ping timeout), plus the ping interval and the
// machine's slack.
const cancelWithin = 5 * time.Second

// A client that cancels mid-answer ends the backend's request, and the
// executor's load returns to zero.
func TestCancelMidAnswerCancelsBackend(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithModels("m1"), backendtest.WithDelay(0, time.Hour))
	v, _ := StartValidator(t, nil)
	e := startServing(t, v, fake, []*pb.ModelDescriptor{Model("m1", 2)}, nil)
	c := NewClient(t, v)
	ctx, cancel := context.WithCancel(context.Background())
	got := newChunks()
	done := inferAsync(ctx, c, chatRequest("m1", "hi"), got.onText)
	got.waitFirst(t)
	if l := e.Load()["m1"]; l.Active != 1 {
		t.Fatalf("load while answering: %+v, want 1 active", l)
	}
	cancel()
	fake.WaitCancelled(t, 1, cancelWithin)
	EventuallyWithin(t, cancelWithin, "executor idle after the cancel", idle(e, "m1"))
	if r := await(t, hangGuard, done); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled request returned %v, want context.Canceled", r.err)
	}
}

// 1,000 requests cancelled at every stage (before the executor reads
// them, while queued, while running, after the first chunk), eight at a
// time against capacity 2 and queue 2, leak no slot: the load returns to
// zero, the backend holds nothing, and the whole capacity still serves.
func TestThousandCancelledRequestsLeakNoSlot(t *testing.T) {
	const (
		total    = 1000
		parallel = 8
	)
	fake := backendtest.New(t, backendtest.WithModels("m1"), backendtest.WithDelay(0, time.Millisecond))
	v, _ := StartValidator(t, nil)
	e := startServing(t, v, fake, []*pb.ModelDescriptor{Model("m1", 2)}, func(c *executor.Config) {
		c.InferenceRate = 0 // this client floods on purpose
	})
	c := NewClient(t, v)
	x := candidates(t, c, "m1")[e.ID()]
	order := []*client.Executor{x}

	var next, answered atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range parallel {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				ctx, cancel := context.WithCancel(context.Background())
				onText := func(string) error { return nil }
				switch i % 4 {
				case 0: // at once
					cancel()
				case 1: // after the first chunk
					onText = func(string) error { cancel(); return nil }
				default: // somewhere in between: dialing, queued or running
					time.AfterFunc(time.Duration(i%7)*time.Millisecond, cancel)
				}
				_, err := c.InferOn(ctx, order, chatRequest("m1", "hi"), onText, nil, time.Now())
				if err == nil {
					answered.Add(1)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	t.Logf("%d requests in %s: %d reached the backend, %d cancelled there, %d answered before their cancel",
		total, time.Since(start).Round(time.Millisecond), len(fake.Requests()), fake.Cancelled(), answered.Load())
	if fake.Cancelled() == 0 {
		t.Fatal("no backend call was cancelled: the test cancels nothing while running")
	}
	EventuallyWithin(t, cancelWithin, "executor idle after 1,000 cancelled requests", idle(e, "m1"))
	EventuallyWithin(t, cancelWithin, "backend holds no request", func() error {
		if n := fake.Active(); n != 0 {
			return fmt.Errorf("backend still handles %d requests", n)
		}
		return nil
	})
	EventuallyWithin(t, cancelWithin, "executor frees every stream", noOpenStreams(e.Host(), c.Host().ID()))
	EventuallyWithin(t, cancelWithin, "client frees every stream", noOpenStreams(c.Host(), e.ID()))
	// Both slots and both queue places still admit requests.
	release := fake.Block()
	var held []<-chan result
	for range 4 {
		held = append(held, inferOnAsync(context.Background(), c, order, chatRequest("m1", "hi"), nil))
	}
	Eventually(t, "capacity and queue full again", func() error {
		if l := e.Load()["m1"]; l.Active != 2 || l.Queued != 2 {
			return fmt.Errorf("load %d active, %d queued; want 2, 2", l.Active, l.Queued)
		}
		return nil
	})
	release()
	for _, ch := range held {
		if r := await(t, Timeout, ch); r.err != nil {
			t.Fatalf("request after the cancelled ones: %v", r.err)
		}
	}
}

// A client that vanishes without a word (its connection goes silent: no
// reset, no FIN) has its backend call cancelled by the executor's ping
// watch, and its slot freed.
func TestSilentClientIsNoticedByPing(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithModels("m1"), backendtest.WithDelay(0, time.Hour))
	v, _ := StartValidator(t, nil)
	e := startServing(t, v, fake, []*pb.ModelDescriptor{Model("m1", 2)}, nil)
	c := NewClient(t, v)
	p := newProxy(t, e.Host())
	x := p.via(candidates(t, c, "m1")[e.ID()])
	got := newChunks()
	inferOnAsync(context.Background(), c, []*client.Executor{x}, chatRequest("m1", "hi"), got.onText)
	got.waitFirst(t)
	p.Freeze()
	fake.WaitCancelled(t, 1, cancelWithin)
	EventuallyWithin(t, cancelWithin, "executor idle after the client vanished", idle(e, "m1"))
}

// A client host that closes while an answer streams cancels the backend
// call as well (its connection ends; no ping needed).
func TestClientHostClosedCancelsBackend(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithModels("m1"), backendtest.WithDelay(0, time.Hour))
	v, _ := StartValidator(t, nil)
	e := startServing(t, v, fake, []*pb.ModelDescriptor{Model("m1", 2)}, nil)
	c := NewClient(t, v)
	got := newChunks()
	inferAsync(context.Background(), c, chatRequest("m1", "hi"), got.onText)
	got.waitFirst(t)
	c.Host().Close()
	fake.WaitCancelled(t, 1, cancelWithin)
	EventuallyWithin(t, cancelWithin, "executor idle after the client closed", idle(e, "m1"))
}
