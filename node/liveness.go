package node

import (
	"context"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
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
				gone(r.Error)
				return
			}
			answered = true
		}
		// The next ping goes out now, answered while we wait.
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		t.Reset(timeout)
	}
}

type pingError string

func (e pingError) Error() string { return string(e) }

const errNoPong = pingError("peer did not answer a ping in time")

// unsupported tells a failed protocol negotiation from a failed peer.
func unsupported(err error) bool {
	s := err.Error()
	return strings.Contains(s, "protocols not supported") || strings.Contains(s, "protocol not supported")
}
