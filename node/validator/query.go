package validator

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// serveQuery answers one /lloom/query/1.0.0 request. Every failure that can
// be answered is answered with its code; only a peer that stops reading
// gets a reset stream.
func (v *Validator) serveQuery(_ context.Context, from peer.ID, req []byte, readErr error) ([]byte, error) {
	resp := v.answer(from, req, readErr)
	b, err := proto.Marshal(resp)
	if err == nil && len(b) > lp.MaxResponseSize {
		err = errors.New("response exceeds the size limit")
	}
	if err != nil {
		v.log.Error().Err(err).Msg("Query response not encoded")
		b, _ = proto.Marshal(errorResponse(resp.GetQueryId(), lp.Errorf(lp.ErrInternal.Code, "internal error")))
	}
	return b, nil
}

func (v *Validator) answer(from peer.ID, req []byte, readErr error) *pb.QueryResponse {
	if readErr != nil {
		if lp.CodeOf(readErr) == lp.ErrInternal.Code {
			readErr = lp.Errorf(lp.ErrMalformed.Code, "request not read: %v", readErr)
		}
		return errorResponse(0, readErr)
	}
	if !v.limits.allow(from, v.cfg.Now()) {
		return errorResponse(0, lp.Errorf(lp.ErrRateLimited.Code, "more than %d queries per second", v.cfg.QueryRate))
	}
	var q pb.QueryRequest
	if err := proto.Unmarshal(req, &q); err != nil {
		return errorResponse(0, lp.Errorf(lp.ErrMalformed.Code, "request does not decode: %v", err))
	}
	limit, err := lp.CheckQuery(&q)
	if err != nil {
		return errorResponse(q.GetQueryId(), err)
	}
	if n := q.GetNetwork(); n != "" && n != v.cfg.Network {
		return errorResponse(q.GetQueryId(), lp.Errorf(lp.ErrWrongNetwork.Code, "this validator serves network %q, not %q", v.cfg.Network, n))
	}
	v.queries.Add(1)
	now := v.cfg.Now()
	resp := v.reg.Query(&q, limit, now)
	if st := resp.GetStatistics(); st != nil {
		v.fillCounters(st, now)
	}
	return resp
}

func (v *Validator) fillCounters(st *pb.Statistics, now time.Time) {
	st.AnnouncementsAccepted = v.announcements.Load()
	st.HeartbeatsAccepted = v.heartbeats.Load()
	st.MessagesRejected = v.rejected.Load()
	st.MessagesIgnored = v.ignored.Load()
	st.AnnouncementsPulled = v.pulled.Load()
	st.QueriesServed = v.queries.Load()
	if v.gossip != nil {
		d := v.gossip.Tracer.Dropped()
		st.MessagesDropped = d.ValidationQueueFull + d.ValidationThrottled
	}
	st.UptimeSeconds = uint64(max(now.Sub(v.started), 0) / time.Second)
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

// limiter is the per-peer query rate limit.
type limiter struct {
	rate  int
	mu    sync.Mutex
	peers map[peer.ID]*peerLimit // guarded by mu
}

type peerLimit struct {
	l    *rate.Limiter
	last time.Time
}

func newLimiter(qps int) *limiter { return &limiter{rate: qps, peers: map[peer.ID]*peerLimit{}} }

func (l *limiter) allow(p peer.ID, now time.Time) bool {
	if l.rate == 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	pl, ok := l.peers[p]
	if !ok {
		pl = &peerLimit{l: rate.NewLimiter(rate.Limit(l.rate), 2*l.rate)}
		l.peers[p] = pl
	}
	pl.last = now
	return pl.l.AllowN(now, 1)
}

// forgetIdle drops limiters of peers idle long enough to have a full
// bucket again.
func (l *limiter) forgetIdle(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, pl := range l.peers {
		if now.Sub(pl.last) > 10*time.Second {
			delete(l.peers, p)
		}
	}
}
