package slots

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const wait = 10 * time.Second

// acquireAsync starts an Acquire and returns where its outcome arrives.
func acquireAsync(ctx context.Context, g *Gate) <-chan func() {
	out := make(chan func(), 1)
	go func() {
		release, err := g.Acquire(ctx)
		if err != nil {
			release = nil
		}
		out <- release
	}()
	return out
}

// waitLoad polls until the gate holds active and queued requests.
func waitLoad(t *testing.T, g *Gate, active, queued uint32) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		l := g.Load()
		if l.Active == active && l.Queued == queued {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("load %d active, %d queued; want %d, %d", l.Active, l.Queued, active, queued)
		}
		time.Sleep(time.Millisecond)
	}
}

func admitted(t *testing.T, ch <-chan func()) func() {
	t.Helper()
	select {
	case release := <-ch:
		if release == nil {
			t.Fatal("refused, want admitted")
		}
		return release
	case <-time.After(wait):
		t.Fatal("not admitted")
		return nil
	}
}

func pending(t *testing.T, ch <-chan func()) {
	t.Helper()
	select {
	case <-ch:
		t.Fatal("admitted while every slot is taken")
	default:
	}
}

// Capacity requests run at once, queue more wait, anything beyond is
// refused at once with ErrFull; releasing admits the waiters in order of
// arrival.
func TestCapacityQueueAndOrder(t *testing.T) {
	g := New(2, 3, nil)
	var releases []func()
	for range 2 {
		r, err := g.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, r)
	}
	var waiters []<-chan func()
	for i := range 3 {
		waiters = append(waiters, acquireAsync(context.Background(), g))
		waitLoad(t, g, 2, uint32(i+1)) // one at a time: the queue's order is theirs
	}
	if _, err := g.Acquire(context.Background()); !errors.Is(err, ErrFull) {
		t.Fatalf("beyond capacity and queue: %v, want ErrFull", err)
	}
	for i, w := range waiters {
		pending(t, w)
		releases[0]()
		releases = releases[1:]
		releases = append(releases, admitted(t, w))
		for _, later := range waiters[i+1:] {
			pending(t, later) // first come, first served
		}
	}
	releases[0]()
	releases[0]() // a second call changes nothing
	if l := g.Load(); l.Active != 1 || l.Queued != 0 {
		t.Fatalf("load %+v, want 1 active", l)
	}
}

// A request whose context ends while it waits leaves the queue: its place
// is free for another, and it never takes a slot.
func TestCancelWhileQueuedFreesThePlace(t *testing.T) {
	g := New(1, 1, nil)
	release, _ := g.Acquire(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	w := acquireAsync(ctx, g)
	waitLoad(t, g, 1, 1)
	cancel()
	select {
	case r := <-w:
		if r != nil {
			t.Fatal("cancelled waiter was admitted")
		}
	case <-time.After(wait):
		t.Fatal("cancelled waiter still waits")
	}
	waitLoad(t, g, 1, 0)
	next := acquireAsync(context.Background(), g)
	waitLoad(t, g, 1, 1)
	release()
	admitted(t, next)()
	waitLoad(t, g, 0, 0)
}

// Raising the capacity admits waiters at once; lowering it lets running
// requests finish and admits nobody until there is room.
func TestResize(t *testing.T) {
	g := New(1, 2, nil)
	r1, _ := g.Acquire(context.Background())
	w1, w2 := acquireAsync(context.Background(), g), (<-chan func())(nil)
	waitLoad(t, g, 1, 1)
	w2 = acquireAsync(context.Background(), g)
	waitLoad(t, g, 1, 2)
	g.Resize(3, 2)
	r2, r3 := admitted(t, w1), admitted(t, w2)
	g.Resize(1, 0)
	if l := g.Load(); l.Active != 3 || l.Capacity != 1 || l.Queue != 0 {
		t.Fatalf("after shrinking: %+v, want 3 still running under capacity 1", l)
	}
	if _, err := g.Acquire(context.Background()); !errors.Is(err, ErrFull) {
		t.Fatalf("over the new capacity with no queue: %v, want ErrFull", err)
	}
	r1()
	r2()
	r3()
	if r, err := g.Acquire(context.Background()); err != nil {
		t.Fatalf("after the running ones ended: %v", err)
	} else {
		r()
	}
}

// onChange sees every change, and after concurrent traffic its last call
// reports the gate's real load: the heartbeats' load comes from it.
func TestOnChangeReportsTheLoad(t *testing.T) {
	var mu sync.Mutex
	var seen []Load
	g := New(2, 1, func(l Load) {
		mu.Lock()
		seen = append(seen, l)
		mu.Unlock()
	})
	last := func() Load {
		mu.Lock()
		defer mu.Unlock()
		return seen[len(seen)-1]
	}
	r1, _ := g.Acquire(context.Background())
	r2, _ := g.Acquire(context.Background())
	if l := last(); l != (Load{Active: 2, Capacity: 2, Queue: 1}) || !l.Overloaded() {
		t.Fatalf("after two: %+v, want 2 active, overloaded", l)
	}
	w := acquireAsync(context.Background(), g)
	waitLoad(t, g, 2, 1)
	if l := last(); l.Queued != 1 {
		t.Fatalf("after one queued: %+v", l)
	}
	r1()
	r3 := admitted(t, w)
	r2()
	r3()
	if l := last(); l != (Load{Capacity: 2, Queue: 1}) || l.Overloaded() {
		t.Fatalf("after all released: %+v, want idle", l)
	}
	mu.Lock()
	n := len(seen)
	mu.Unlock()
	if n != 6 { // 2 acquires, 1 queued, 3 releases (one admitting the waiter)
		t.Fatalf("%d changes reported, want 6", n)
	}

	// Many goroutines at once: the last report must match the end state.
	for round := range 50 {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(round%3)*time.Millisecond)
				defer cancel()
				if r, err := g.Acquire(ctx); err == nil {
					r()
				}
			})
		}
		wg.Wait()
		if l := last(); l != g.Load() {
			t.Fatalf("round %d: last reported load %+v, but the gate holds %+v", round, l, g.Load())
		}
	}
}

// A report that the scheduler delays cannot overwrite a later one: while
// one release's report is stalled, another release happens; the last
// report must still be the gate's real load.
func TestOnChangeLastReportWins(t *testing.T) {
	var (
		mu      sync.Mutex
		seen    []Load
		armed   atomic.Bool
		once    sync.Once
		entered = make(chan struct{})
		unblock = make(chan struct{})
	)
	g := New(2, 0, func(l Load) {
		if armed.Load() && l.Active == 1 {
			once.Do(func() { close(entered); <-unblock })
		}
		mu.Lock()
		seen = append(seen, l)
		mu.Unlock()
	})
	r1, _ := g.Acquire(context.Background())
	r2, _ := g.Acquire(context.Background())
	armed.Store(true)
	aDone, bDone := make(chan struct{}), make(chan struct{})
	go func() { r1(); close(aDone) }()
	<-entered // the first release's report is stalled
	go func() { r2(); close(bDone) }()
	select { // a gate that serializes its reports holds the second one back
	case <-bDone:
	case <-time.After(100 * time.Millisecond):
	}
	close(unblock)
	<-aDone
	<-bDone
	mu.Lock()
	defer mu.Unlock()
	if l := seen[len(seen)-1]; l != g.Load() {
		t.Fatalf("last report %+v, but the gate holds %+v: a stale report overwrote a newer one", l, g.Load())
	}
}

func TestOverloaded(t *testing.T) {
	for _, tt := range []struct {
		l    Load
		want bool
	}{
		{Load{Active: 1, Capacity: 2}, false},
		{Load{Active: 1, Queued: 1, Capacity: 2}, true},
		{Load{Active: 3, Capacity: 2}, true},
		{Load{}, false}, // no capacity announced: never overloaded
	} {
		if got := tt.l.Overloaded(); got != tt.want {
			t.Errorf("%s: Overloaded() = %v, want %v", fmt.Sprintf("%+v", tt.l), got, tt.want)
		}
	}
}
