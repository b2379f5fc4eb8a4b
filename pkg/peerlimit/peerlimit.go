// Package peerlimit rate-limits requests per remote peer with a token
// bucket each, in a bounded set of buckets.
package peerlimit

import (
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// DefaultMaxPeers bounds the buckets kept. Past it the least recently
// seen peer's bucket is dropped: that peer starts again with a full
// bucket, so a crowd of identities can only make limits laxer for others,
// never stricter, and the memory stays bounded.
const DefaultMaxPeers = 16384

// Limiter allows rate requests per second per peer, with bursts of burst.
// A zero rate allows everything. It is safe for concurrent use.
type Limiter struct {
	rate  rate.Limit
	burst int

	mu    sync.Mutex
	peers *lru.Cache[peer.ID, *rate.Limiter] // guarded by mu
}

// New returns a limiter keeping at most maxPeers buckets (0: DefaultMaxPeers).
// A burst below 1 is 1: a bucket that holds no token would refuse every
// request and never say when to retry.
func New(perSecond float64, burst, maxPeers int) *Limiter {
	if maxPeers <= 0 {
		maxPeers = DefaultMaxPeers
	}
	burst = max(burst, 1)
	c, _ := lru.New[peer.ID, *rate.Limiter](maxPeers) // only fails for a size <= 0
	return &Limiter{rate: rate.Limit(perSecond), burst: burst, peers: c}
}

// Allow reports whether p may make one more request at now.
func (l *Limiter) Allow(p peer.ID, now time.Time) bool {
	if l.rate == 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.peers.Get(p)
	if !ok {
		b = rate.NewLimiter(l.rate, l.burst)
		l.peers.Add(p, b)
	}
	return b.AllowN(now, 1)
}

// RetryAfter is how long until p has a token again, at now.
func (l *Limiter) RetryAfter(p peer.ID, now time.Time) time.Duration {
	if l.rate == 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.peers.Peek(p)
	if !ok {
		return 0
	}
	r := b.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return d
}

// Len is the number of buckets kept.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.peers.Len()
}
