package nodetest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lloom/lloom/node/executor"
	. "github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/pkg/backend/backendtest"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// earlyHeartbeat bounds how long validators take to see a model cross into
// or out of overloaded (DESIGN §8: within about a second; one early
// heartbeat a second at most, so a crossing back may wait for that second).
// With heartbeats a minute apart, seeing it within this bound at all proves
// the early heartbeat; the bound leaves slack for a loaded machine.
const earlyHeartbeat = 3 * time.Second

// Capacity 2 and queue 1: two requests reach the backend, one waits, the
// fourth is refused with 6002 and a retry hint. The backend never sees more
// than two at once. The validator sees the executor overloaded within about
// a second, although heartbeats are a minute apart (only the early heartbeat
// can explain it), sees the real counts in a heartbeat, and sees the
// executor healthy again once the load falls.
func TestCapacityQueueAndOverload(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithModels("m1"))
	v, _ := StartValidator(t, nil)
	e := startServing(t, v, fake, []*pb.ModelDescriptor{Model("m1", 2)}, func(c *executor.Config) {
		c.HeartbeatInterval = time.Minute
		c.Serving = map[string]executor.ModelServing{"m1": {Queue: uint32p(1)}}
	})
	Eventually(t, "healthy before any request", seesStatus(v, e.ID(), pb.ExecutorStatus_EXECUTOR_STATUS_HEALTHY))
	c := NewClient(t, v)
	release := fake.Block()
	defer release()

	ctx := context.Background()
	var running []<-chan result
	for range 2 {
		running = append(running, inferAsync(ctx, c, chatRequest("m1", "hi"), nil))
	}
	fake.WaitActive(t, 2, Timeout)
	EventuallyWithin(t, earlyHeartbeat, "validator sees the executor overloaded (early heartbeat)",
		seesStatus(v, e.ID(), pb.ExecutorStatus_EXECUTOR_STATUS_OVERLOADED))

	running = append(running, inferAsync(ctx, c, chatRequest("m1", "hi"), nil))
	Eventually(t, "third request queued", func() error {
		if l := e.Load()["m1"]; l.Active != 2 || l.Queued != 1 {
			return fmt.Errorf("load %d active, %d queued; want 2, 1", l.Active, l.Queued)
		}
		return nil
	})
	ans, err := c.Infer(ctx, chatRequest("m1", "hi"), nil)
	wantCode(t, "request beyond capacity and queue", err, lp.ErrOverloaded.Code)
	if len(ans.Attempts) != 1 || ans.Attempts[0].Code != lp.ErrOverloaded.Code || ans.Attempts[0].RetryAfter <= 0 {
		t.Fatalf("attempts %+v: want one 6002 with a retry hint", ans.Attempts)
	}
	if err := e.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	Eventually(t, "heartbeat carries the real load", seesLoad(v, e.ID(), "m1", 2, 1))
	if fake.Active() != 2 {
		t.Fatalf("backend handles %d requests, want capacity 2", fake.Active())
	}

	release()
	for i, ch := range running {
		if r := await(t, Timeout, ch); r.err != nil {
			t.Fatalf("request %d: %v", i, r.err)
		}
	}
	if fake.Peak() != 2 || len(fake.Requests()) != 3 {
		t.Fatalf("backend peak %d over %d requests; want at most capacity 2 at once, 3 requests", fake.Peak(), len(fake.Requests()))
	}
	Eventually(t, "executor idle", idle(e, "m1"))
	EventuallyWithin(t, earlyHeartbeat, "validator sees the executor healthy again (early heartbeat)",
		seesStatus(v, e.ID(), pb.ExecutorStatus_EXECUTOR_STATUS_HEALTHY))
}
