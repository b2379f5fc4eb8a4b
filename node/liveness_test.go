package node

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Requests that follow each other closely must never take a live peer for
// gone. Each used to start its own ping loop as the last one ended; the
// new ping stream then met go-libp2p's per-peer limit while the old one
// was still being released, and that refusal was reported as the peer
// having gone (869 of 80,503 watches in the gateway benchmark).
func TestBackToBackWatchesOfALivePeer(t *testing.T) {
	a, b := loopbackHost(t), loopbackHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	w := NewWatcher(a, 5*time.Millisecond, PingTimeout)
	var gone atomic.Int64
	for i := 0; i < 2000; i++ {
		stop := w.Watch(b.ID(), func(error) { gone.Add(1) })
		if i%10 == 0 {
			time.Sleep(time.Millisecond) // let pings run while watched
		}
		stop()
	}
	// A false report would come within a ping timeout of the last watch.
	stop := w.Watch(b.ID(), func(error) { gone.Add(1) })
	time.Sleep(2 * PingTimeout)
	stop()
	if n := gone.Load(); n != 0 {
		t.Fatalf("a live peer was reported gone %d times", n)
	}
}

// A peer that goes away is still reported, once per watching request.
func TestWatcherReportsAPeerThatLeaves(t *testing.T) {
	a, b := loopbackHost(t), loopbackHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	w := NewWatcher(a, 50*time.Millisecond, 300*time.Millisecond)
	reported := make(chan error, 2)
	stop1 := w.Watch(b.ID(), func(err error) { reported <- err })
	stop2 := w.Watch(b.ID(), func(err error) { reported <- err })
	defer stop1()
	defer stop2()
	b.Close()
	for i := 0; i < 2; i++ {
		select {
		case <-reported:
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of 2 watching requests told that the peer left", i)
		}
	}
}
