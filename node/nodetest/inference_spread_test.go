package nodetest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/node/executor"
	. "github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/pkg/backend/backendtest"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// 30 requests from three clients (two at a time each: six in flight, the
// network's whole capacity) over three executors of capacity 2: all
// complete, every executor serves some, and none is refused for capacity,
// because the clients choose by load instead of all taking the first
// executor listed.
//
// The test makes the outcome deterministic: requests still overlap (each
// lasts about 0.5 s), but they start one at a time, each once the
// validator's view of the load covers the requests already started. What clients do with a stale
// view (random choices, random ties) is TestChoose's concern: with
// answers as short as the view's lag, bursts of clients reading the same
// stale view overflow one queue now and then, by design of the contract.
func TestClientsSpreadLoad(t *testing.T) {
	const (
		executors = 3
		capacity  = 2
		clients   = 3
		perClient = 2 // requests in flight per client
		requests  = 30
	)
	fake := backendtest.New(t, backendtest.WithModels("m1"), backendtest.WithDelay(0, 60*time.Millisecond))
	v, _ := StartValidator(t, nil)
	var execs []*executor.Executor
	for range executors {
		execs = append(execs, startServing(t, v, fake, []*pb.ModelDescriptor{Model("m1", capacity)}, func(c *executor.Config) {
			c.HeartbeatInterval = 100 * time.Millisecond
		}))
	}
	var cs []*client.Client
	for range clients {
		cs = append(cs, NewClient(t, v))
	}

	var (
		mu       sync.Mutex
		served   = map[peer.ID]int{}
		refused  []client.Attempt
		failures []error
		starting sync.Mutex // one request starts at a time
	)
	jobs := make(chan struct{}, requests)
	for range requests {
		jobs <- struct{}{}
	}
	close(jobs)
	var wg sync.WaitGroup
	for i := range clients * perClient {
		c := cs[i%clients]
		wg.Go(func() {
			for range jobs {
				starting.Lock()
				err := poll(func() error { return viewCovers(v, execs) })
				received := len(fake.Requests())
				done := inferAsync(context.Background(), c, chatRequest("m1", "hi"), nil)
				if err == nil {
					err = poll(func() error { // the executor has it: the next start sees it
						if len(fake.Requests()) == received {
							return errors.New("request not at the backend yet")
						}
						return nil
					})
				}
				starting.Unlock()
				r := <-done
				mu.Lock()
				switch {
				case err != nil:
					failures = append(failures, err)
				case r.err != nil:
					failures = append(failures, r.err)
				default:
					served[r.ans.Executor]++
				}
				for _, a := range r.ans.Attempts {
					if a.Code == lp.ErrOverloaded.Code {
						refused = append(refused, a)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed, the first: %v", len(failures), requests, failures[0])
	}
	if len(refused) > 0 {
		t.Fatalf("%d attempts refused for capacity (%+v), though six requests at a time fit the network's capacity", len(refused), refused[0])
	}
	for _, e := range execs {
		if served[e.ID()] == 0 {
			t.Fatalf("executor %s served nothing: %v", e.ID(), served)
		}
	}
	if fake.Peak() < 4 {
		t.Fatalf("at most %d requests overlapped: the test spreads nothing", fake.Peak())
	}
	t.Logf("served per executor: %v; backend peak %d", served, fake.Peak())
}

// viewCovers is a condition: v sees at least each executor's real load.
// A view that shows more (requests ended since the last heartbeat) only
// steers clients away from an executor; one that shows less sends them to
// one that may be full.
func viewCovers(v *validator.Validator, execs []*executor.Executor) error {
	for _, e := range execs {
		ent, err := entry(v, e.ID())
		if err != nil {
			return err
		}
		var seen uint32
		for _, l := range ent.GetLoad().GetModels() {
			seen += l.GetActive() + l.GetQueued()
		}
		if l := e.Load()["m1"]; seen < l.Active+l.Queued {
			return fmt.Errorf("validator sees %d requests at %s, which holds %d", seen, e.ID(), l.Active+l.Queued)
		}
	}
	return nil
}

// poll is Eventually for goroutines other than the test's.
func poll(cond func() error) error {
	deadline := time.Now().Add(Timeout)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}
