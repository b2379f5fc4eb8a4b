package node

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// Liveness timing while an answer streams (DESIGN §8): a side that dies
// sends nothing over QUIC, whose idle timeout is 30 s, so each side pings
// the other.
const (
	PingInterval = 250 * time.Millisecond
	PingTimeout  = time.Second
)

// WatchPeer pings p every interval until ctx ends and calls gone once if a
// ping goes unanswered for timeout or fails. A peer that does not speak
// the ping protocol (the first ping fails at once, before any answer) is
// not taken for gone: WatchPeer returns and leaves the judgement to the
// stream and the transport.
func WatchPeer(ctx context.Context, h host.Host, p peer.ID, interval, timeout time.Duration, gone func(error)) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := ping.Ping(ctx, h, p)
	answered := false
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			gone(errNoPong)
			return
		case r, ok := <-results:
			if !ok {
				return
			}
			if r.Error != nil {
				if ctx.Err() != nil {
					return
				}
				if !answered && unsupported(r.Error) {
					return
				}
				if errors.Is(r.Error, network.ErrResourceLimitExceeded) {
					// Our side could not open a ping stream (go-libp2p
					// allows a peer only a few): that says nothing of the
					// peer. Try again after an interval.
					if !sleep(ctx, interval) {
						return
					}
					results = ping.Ping(ctx, h, p)
					t.Reset(timeout)
					continue
				}
				gone(r.Error)
				return
			}
			answered = true
		}
		// The next ping goes out now, answered while we wait.
		if !sleep(ctx, interval) {
			return
		}
		t.Reset(timeout)
	}
}

// sleep waits d, or less when ctx ends first (then it reports false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Watcher shares one ping loop per peer among every request that needs
// it. go-libp2p lets a peer hold only a few ping streams at once (3
// outbound, 2 inbound), so a loop per request fails from the third
// concurrent request between the same two peers on, and that failure would
// be taken for the peer having gone.
type Watcher struct {
	h                 host.Host
	interval, timeout time.Duration

	mu    sync.Mutex
	next  uint64             // guarded by mu: subscription ids
	peers map[peer.ID]*watch // guarded by mu: peers being watched
}

// watch is one peer's ping loop and the requests it reports to.
type watch struct {
	cancel context.CancelFunc
	subs   map[uint64]func(error) // guarded by Watcher.mu; nil once the peer is gone
	linger *time.Timer            // guarded by Watcher.mu: ends an unwatched loop
}

// NewWatcher returns a Watcher pinging through h.
func NewWatcher(h host.Host, interval, timeout time.Duration) *Watcher {
	return &Watcher{h: h, interval: interval, timeout: timeout, peers: map[peer.ID]*watch{}}
}

// Watch calls gone at most once if p stops answering pings (see WatchPeer)
// before stop is called. stop must be called when the request ends; it is
// idempotent. The ping loop ends when no request watches p any more.
func (w *Watcher) Watch(p peer.ID, gone func(error)) (stop func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	pw := w.peers[p]
	if pw != nil && pw.linger != nil {
		pw.linger.Stop() // watched again before the loop ended: keep it
		pw.linger = nil
	}
	if pw == nil {
		ctx, cancel := context.WithCancel(context.Background())
		pw = &watch{cancel: cancel, subs: map[uint64]func(error){}}
		w.peers[p] = pw
		go WatchPeer(ctx, w.h, p, w.interval, w.timeout, func(err error) { w.lost(p, pw, err) })
	}
	w.next++
	id := w.next
	pw.subs[id] = gone
	var once sync.Once
	return func() { once.Do(func() { w.unsubscribe(p, pw, id) }) }
}

// lost tells every request watching p that it has gone; a later request
// starts a new watch.
func (w *Watcher) lost(p peer.ID, pw *watch, err error) {
	w.mu.Lock()
	if w.peers[p] == pw {
		delete(w.peers, p)
	}
	subs := pw.subs
	pw.subs = nil
	w.mu.Unlock()
	pw.cancel()
	for _, gone := range subs {
		gone(err)
	}
}

// unsubscribe ends a request's watch. The peer's loop outlives its last
// watcher by one ping timeout: requests that follow each other closely
// then share it, instead of each opening a ping stream while the last
// one's is still being released — go-libp2p refuses that over its limit.
func (w *Watcher) unsubscribe(p peer.ID, pw *watch, id uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(pw.subs, id)
	if len(pw.subs) > 0 || w.peers[p] != pw || pw.linger != nil {
		return
	}
	pw.linger = time.AfterFunc(w.timeout, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(pw.subs) == 0 && w.peers[p] == pw {
			delete(w.peers, p)
			pw.cancel()
		}
	})
}

type pingError string

func (e pingError) Error() string { return string(e) }

const errNoPong = pingError("peer did not answer a ping in time")

// unsupported tells a failed protocol negotiation from a failed peer.
func unsupported(err error) bool {
	s := err.Error()
	return strings.Contains(s, "protocols not supported") || strings.Contains(s, "protocol not supported")
}
