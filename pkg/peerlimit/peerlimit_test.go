package peerlimit

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func allowed(l *Limiter, p peer.ID, now time.Time, n int) int {
	ok := 0
	for range n {
		if l.Allow(p, now) {
			ok++
		}
	}
	return ok
}

// A peer gets its burst at once, then rate per second; the retry hint says
// when its next request will pass, without spending that token.
func TestRateBurstAndRetryAfter(t *testing.T) {
	l := New(2, 4, 0)
	a := peer.ID("a")
	if n := allowed(l, a, t0, 10); n != 4 {
		t.Fatalf("%d of 10 requests at once allowed, want the burst of 4", n)
	}
	for range 2 {
		if d := l.RetryAfter(a, t0); d != 500*time.Millisecond {
			t.Fatalf("retry after %v, want 500ms at 2 per second", d)
		}
	}
	if l.Allow(a, t0.Add(499*time.Millisecond)) {
		t.Fatal("allowed before the retry hint")
	}
	if !l.Allow(a, t0.Add(500*time.Millisecond)) {
		t.Fatal("refused at the retry hint")
	}
	if n := allowed(l, a, t0.Add(1500*time.Millisecond), 10); n != 2 {
		t.Fatalf("%d allowed one second later, want the 2 that refilled", n)
	}
	if d := l.RetryAfter(peer.ID("unknown"), t0); d != 0 {
		t.Fatalf("retry hint for a peer never seen: %v, want 0", d)
	}
}

// Each peer has its own bucket.
func TestPeersAreIndependent(t *testing.T) {
	l := New(1, 1, 0)
	if !l.Allow("a", t0) || l.Allow("a", t0) {
		t.Fatal("peer a: want one request allowed, the next refused")
	}
	if !l.Allow("b", t0) {
		t.Fatal("peer b refused because of peer a")
	}
}

// Rate 0 turns the limit off.
func TestZeroRateAllowsAll(t *testing.T) {
	l := New(0, 0, 0)
	if n := allowed(l, "a", t0, 1000); n != 1000 || l.RetryAfter("a", t0) != 0 || l.Len() != 0 {
		t.Fatalf("rate 0: %d of 1000 allowed, %d buckets", n, l.Len())
	}
}

// A rate below one every two seconds still allows one request now and
// then: the burst is at least one, and the retry hint is finite.
func TestSlowRateHasABurstOfOne(t *testing.T) {
	rate := 0.2
	l := New(rate, int(2*rate), 0) // as the executor computes its burst
	if !l.Allow("a", t0) {
		t.Fatal("first request of a peer refused at rate 0.2/s: a burst of 0 never allows anything")
	}
	if d := l.RetryAfter("a", t0); d != 5*time.Second {
		t.Fatalf("retry after %v, want 5s", d)
	}
}

// Buckets are bounded: past maxPeers the least recently seen peer is
// forgotten and starts again with a full bucket.
func TestBucketsAreBounded(t *testing.T) {
	l := New(1, 1, 3)
	for i := range 10 {
		l.Allow(peer.ID(fmt.Sprint(i)), t0)
	}
	if l.Len() != 3 {
		t.Fatalf("%d buckets for 10 peers, want the bound of 3", l.Len())
	}
	if !l.Allow("0", t0) {
		t.Fatal("a forgotten peer should start again with a full bucket")
	}
	if l.Allow("9", t0) {
		t.Fatal("a remembered peer got a second token at once")
	}
}
