package validator

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/pkg/metrics"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// serveQuery answers one /lloom/query/1.0.0 request. Every failure that can
// be answered is answered with its code; only a peer that stops reading
// gets a reset stream. The asking peer is charged the query's cost once
// the response is encoded (DESIGN §10: queries cost what they cost).
func (v *Validator) serveQuery(ctx context.Context, from peer.ID, req []byte, readErr error) ([]byte, error) {
	start := time.Now()
	resp, scanned, kind := v.answer(ctx, from, req, readErr)
	b, err := proto.Marshal(resp)
	if err == nil && len(b) > lp.MaxResponseSize {
		err = errors.New("response exceeds the size limit")
	}
	if err != nil {
		v.log.Error().Err(err).Msg("Query response not encoded")
		b, _ = proto.Marshal(errorResponse(resp.GetQueryId(), lp.Errorf(lp.ErrInternal.Code, "internal error")))
	}
	if resp.GetErrorCode() != pb.ErrorCode_ERROR_CODE_RATE_LIMITED {
		v.limits.charge(from, queryCost(len(b), scanned)-1, v.cfg.Now())
	}
	if kind == queryRefused {
		v.refused.add(resp.GetErrorCode())
	} else {
		v.meters.queryServed(kind, time.Since(start))
	}
	return b, nil
}

// answer returns the response to req, the registry entries it examined,
// and the kind of query it answered (queryRefused: refused before the
// registry was asked).
func (v *Validator) answer(ctx context.Context, from peer.ID, req []byte, readErr error) (*pb.QueryResponse, int, queryKind) {
	if readErr != nil {
		if lp.CodeOf(readErr) == lp.ErrInternal.Code {
			readErr = lp.Errorf(lp.ErrMalformed.Code, "request not read: %v", readErr)
		}
		return errorResponse(0, readErr), 0, queryRefused
	}
	if now := v.cfg.Now(); !v.limits.admit(from, now) {
		// Held until the peer could be served again, within bounds: a
		// peer that floods waits on its own streams (eight at a time)
		// instead of being refused as fast as it can ask.
		wait := min(max(v.limits.retryAfter(from, now), minRefusalDelay), maxRefusalDelay)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		return errorResponse(0, lp.Errorf(lp.ErrRateLimited.Code,
			"query budget spent: %d units per second, a query costing 1 unit plus 1 per %d KiB answered and 1 per %d entries examined",
			v.cfg.QueryRate, bytesPerUnit>>10, entriesPerUnit)), 0, queryRefused
	}
	var q pb.QueryRequest
	if err := proto.Unmarshal(req, &q); err != nil {
		return errorResponse(0, lp.Errorf(lp.ErrMalformed.Code, "request does not decode: %v", err)), 0, queryRefused
	}
	limit, err := lp.CheckQuery(&q)
	if err != nil {
		return errorResponse(q.GetQueryId(), err), 0, queryRefused
	}
	if n := q.GetNetwork(); n != "" && n != v.cfg.Network {
		return errorResponse(q.GetQueryId(), lp.Errorf(lp.ErrWrongNetwork.Code, "this validator serves network %q, not %q", v.cfg.Network, n)), 0, queryRefused
	}
	v.queries.Add(1)
	now := v.cfg.Now()
	resp, scanned := v.reg.QueryWork(&q, limit, now)
	if st := resp.GetStatistics(); st != nil {
		v.fillCounters(st, now)
	}
	return resp, scanned, queryKind(metrics.QueryKind(&q))
}

func (v *Validator) fillCounters(st *pb.Statistics, now time.Time) {
	st.AnnouncementsAccepted = v.msgs.sum(kindAnnouncement, verdictAccepted)
	st.HeartbeatsAccepted = v.msgs.sum(kindHeartbeat, verdictAccepted)
	st.MessagesRejected = v.msgs.sum(numKinds, verdictRejected)
	st.MessagesIgnored = v.msgs.sum(numKinds, verdictIgnored)
	st.AnnouncementsPulled = v.pullStats.pulled()
	st.QueriesServed = v.queries.Load()
	if v.gossip != nil {
		d := v.gossip.Tracer.Dropped()
		st.MessagesDropped = d.ValidationQueueFull + d.ValidationThrottled
	}
	st.UptimeSeconds = uint64(max(now.Sub(v.started), 0) / time.Second)
	v.fillRelay(st) // reach.go
}

// Stats returns the statistics a query would.
func (v *Validator) Stats() *pb.Statistics {
	now := v.cfg.Now()
	st := v.reg.Stats(now)
	v.fillCounters(st, now)
	return st
}

func errorResponse(id uint64, err error) *pb.QueryResponse {
	msg := err.Error()
	if e, ok := err.(*lp.Error); ok {
		msg = e.Reason // the code travels in its own field
	}
	return &pb.QueryResponse{QueryId: id, ErrorCode: lp.CodeOf(err), ErrorMessage: msg}
}

// What a query costs, in units of what a small one costs the validator
// (its stream, decoding and answer: about 250 µs of CPU on the machine of
// docs/PERFORMANCE.md). A query costs one unit, plus one per bytesPerUnit
// of response, plus one per entriesPerUnit registry entries examined, so
// that its price follows its work. --query-rate is in these units.
const (
	bytesPerUnit   = 64 << 10
	entriesPerUnit = 32 << 10
	// A 4290 answer is held at least minRefusalDelay, and until the peer
	// could be served again up to maxRefusalDelay.
	minRefusalDelay = 100 * time.Millisecond
	maxRefusalDelay = time.Second
)

func queryCost(respBytes, scanned int) float64 {
	return 1 + float64(respBytes)/bytesPerUnit + float64(scanned)/entriesPerUnit
}

// QueryCost is what a query that examined scanned registry entries and
// returned respBytes is charged, in query units (the unit of --query-rate).
func QueryCost(respBytes, scanned int) float64 { return queryCost(respBytes, scanned) }

// limiter is the per-peer query budget: a token bucket of units per peer,
// refilled at rate units per second up to twice that. A query is admitted
// while the bucket holds a unit, which admit takes; the rest of its cost is
// charged once it is answered, which may take the bucket below zero: the
// peer then waits until it has refilled. An expensive query thus costs its
// peer the time the validator spent on it, and a flood of them is refused
// sooner than one of cheap queries.
type limiter struct {
	rate  float64 // units per second; 0 turns the limit off
	burst float64
	mu    sync.Mutex
	peers map[peer.ID]*bucket // guarded by mu
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

func newLimiter(rate int) *limiter {
	return &limiter{rate: float64(rate), burst: 2 * float64(rate), peers: map[peer.ID]*bucket{}}
}

// bucket returns p's bucket refilled up to now; call it with mu held.
func (l *limiter) bucket(p peer.ID, now time.Time) *bucket {
	b, ok := l.peers[p]
	if !ok {
		b = &bucket{tokens: l.burst, at: now}
		l.peers[p] = b
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.at = now
	}
	return b
}

// admit takes one unit from p's bucket, or reports false, taking nothing,
// when it holds less.
func (l *limiter) admit(p peer.ID, now time.Time) bool {
	if l.rate == 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(p, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// charge takes units more from p's bucket, below zero if need be.
func (l *limiter) charge(p peer.ID, units float64, now time.Time) {
	if l.rate == 0 || units <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bucket(p, now).tokens -= units
}

// retryAfter is how long until p's bucket holds a unit again.
func (l *limiter) retryAfter(p peer.ID, now time.Time) time.Duration {
	if l.rate == 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(p, now)
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// forgetIdle drops the buckets that have refilled: forgetting them changes
// nothing. A peer in debt stays until it has paid.
func (l *limiter) forgetIdle(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, b := range l.peers {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.peers, p)
		}
	}
}
