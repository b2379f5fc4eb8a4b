package validator

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/node"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

const (
	pullWorkers   = 8
	pullQueue     = 4096
	minPullPeriod = time.Second // per executor
)

// pullJob asks for an executor's announcement after a verified heartbeat
// named an announcement we do not hold.
type pullJob struct {
	executor peer.ID
	vouched  uint64  // the heartbeat's announcement_seq
	via      peer.ID // the peer that relayed the heartbeat
}

// puller runs announcement pulls on a few workers, one at a time per
// executor and at most one per minPullPeriod, so that a burst of
// heartbeats (a validator restart) costs one pull per executor.
type puller struct {
	v    *Validator
	jobs chan pullJob

	mu   sync.Mutex
	last map[peer.ID]time.Time // guarded by mu: start of the last pull
	busy map[peer.ID]bool      // guarded by mu
}

func newPuller(v *Validator) *puller {
	return &puller{v: v, jobs: make(chan pullJob, pullQueue), last: map[peer.ID]time.Time{}, busy: map[peer.ID]bool{}}
}

func (p *puller) request(executor peer.ID, vouched uint64, via peer.ID) {
	now := time.Now()
	p.mu.Lock()
	if p.busy[executor] || now.Sub(p.last[executor]) < minPullPeriod {
		p.mu.Unlock()
		return
	}
	p.busy[executor] = true
	p.last[executor] = now
	p.mu.Unlock()
	select {
	case p.jobs <- pullJob{executor, vouched, via}:
	default:
		p.finish(executor) // queue full: the next heartbeat asks again
	}
}

func (p *puller) finish(executor peer.ID) {
	p.mu.Lock()
	delete(p.busy, executor)
	for id, t := range p.last {
		if time.Since(t) > time.Minute {
			delete(p.last, id)
		}
	}
	p.mu.Unlock()
}

func (p *puller) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range pullWorkers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-p.jobs:
					p.pull(ctx, j)
					p.finish(j.executor)
				}
			}
		})
	}
	wg.Wait()
}

func (p *puller) pull(ctx context.Context, j pullJob) {
	v := p.v
	log := v.log.With().Str("executor", j.executor.String()).Logger()
	env, err := node.Call(ctx, v.h, j.executor, lp.AnnouncementProtocol, nil, lp.MaxGossipMessageSize, v.cfg.PullTimeout)
	if err != nil || len(env) == 0 {
		// The executor may not be reachable from here (its heartbeat came
		// through another validator): ask the relaying peer, and check the
		// envelope ourselves.
		if j.via != j.executor && j.via != "" {
			env2, err2 := p.askRelay(ctx, j)
			if err2 == nil {
				env, err = env2, nil
			} else if err == nil {
				err = err2
			}
		}
	}
	if err != nil || len(env) == 0 {
		log.Debug().Err(err).Msg("Announcement pull failed; the next heartbeat retries")
		return
	}
	s, err := lp.OpenAnnouncement(env)
	if err == nil && s.Signer != j.executor {
		err = lp.Errorf(lp.ErrInvalidSignature.Code, "pulled announcement is signed by %s", s.Signer)
	}
	if err == nil {
		err = p.fresh(s, j.vouched)
	}
	if err == nil {
		err = v.applyAnnouncement(s, v.cfg.Now(), "pull")
	}
	if err != nil {
		log.Debug().Err(err).Msg("Pulled announcement not applied")
		return
	}
	v.pulled.Add(1)
}

// fresh applies the contract's time bounds to a pulled announcement, with
// one exception: one that a fresh, verified heartbeat names by its seq is
// current however old it is. An executor keeps its announcement until its
// models change, so a validator that restarts must accept one signed long
// ago; the heartbeat vouches that it is still the executor's word.
func (p *puller) fresh(s *lp.SignedAnnouncement, vouched uint64) error {
	maxAge := p.v.cfg.Registry.RemoveAfter.Milliseconds()
	if s.Announcement.GetSeq() == vouched {
		maxAge = 0
	}
	return lp.CheckFreshness(s.Announcement.GetIssuedAtMs(), p.v.cfg.Now().UnixMilli(), maxAge)
}

func (p *puller) askRelay(ctx context.Context, j pullJob) ([]byte, error) {
	req, err := proto.Marshal(&pb.QueryRequest{
		Query:   &pb.QueryRequest_ExecutorInfo{ExecutorInfo: &pb.ExecutorInfoQuery{PeerIds: [][]byte{[]byte(j.executor)}}},
		Filters: &pb.QueryFilters{IncludeStale: true, IncludeUnavailable: true},
	})
	if err != nil {
		return nil, err
	}
	b, err := node.Call(ctx, p.v.h, j.via, lp.QueryProtocol, req, lp.MaxResponseSize, p.v.cfg.PullTimeout)
	if err != nil {
		return nil, err
	}
	var resp pb.QueryResponse
	if err := proto.Unmarshal(b, &resp); err != nil {
		return nil, err
	}
	if err := lp.ErrorFromResponse(resp.GetErrorCode(), resp.GetErrorMessage()); err != nil {
		return nil, err
	}
	for _, e := range resp.GetExecutors().GetExecutors() {
		if bytes.Equal(e.GetPeerId(), []byte(j.executor)) {
			return e.GetAnnouncementEnvelope(), nil
		}
	}
	return nil, fmt.Errorf("relay %s does not know executor %s", j.via, j.executor)
}
