package validator

import (
	"context"
	"errors"
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

	relays *relayBatcher
}

func newPuller(v *Validator) *puller {
	p := &puller{v: v, jobs: make(chan pullJob, pullQueue), last: map[peer.ID]time.Time{}, busy: map[peer.ID]bool{}}
	p.relays = newRelayBatcher(p)
	return p
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
	p.mu.Unlock()
}

// forget drops pull times older than a minute; the sweep calls it, so that
// finishing a pull stays O(1) when thousands finish at once.
func (p *puller) forget(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, t := range p.last {
		if now.Sub(t) > time.Minute {
			delete(p.last, id)
		}
	}
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
					if p.pull(ctx, j) {
						p.finish(j.executor)
					}
				}
			}
		})
	}
	wg.Go(func() { p.relays.run(ctx) })
	wg.Wait()
}

// pull asks the executor itself for its announcement. When it cannot be
// reached (its heartbeat came through another validator), the job goes to
// the relay batcher, which asks the relaying peer for many executors at
// once and finishes the job itself; pull then reports false.
func (p *puller) pull(ctx context.Context, j pullJob) (done bool) {
	v := p.v
	env, err := node.Call(ctx, v.h, j.executor, lp.AnnouncementProtocol, nil, lp.MaxGossipMessageSize, v.cfg.PullTimeout)
	if (err != nil || len(env) == 0) && j.via != j.executor && j.via != "" && ctx.Err() == nil {
		p.relays.add(j)
		return false
	}
	p.apply(j, env, err)
	return true
}

// apply checks a pulled envelope and hands it to the registry.
func (p *puller) apply(j pullJob, env []byte, err error) {
	v := p.v
	if err == nil && len(env) == 0 {
		err = errors.New("the executor announces nothing")
	}
	if err != nil {
		v.log.Debug().Err(err).Stringer("executor", j.executor).Msg("Announcement pull failed; the next heartbeat retries")
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
		v.log.Debug().Err(err).Stringer("executor", j.executor).Msg("Pulled announcement not applied")
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

// relayBatcher collects pulls that must go through a relaying peer and
// sends them as executor-info queries of up to MaxQueryPeerIDs ids, so that
// a validator which learns of thousands of executors through another
// validator does not spend one rate-limited query on each.
type relayBatcher struct {
	p    *puller
	kick chan struct{}

	mu      sync.Mutex
	pending map[peer.ID][]pullJob // guarded by mu: by relay
}

// relayWindow is how long the batcher waits for more jobs to gather.
const relayWindow = 50 * time.Millisecond

func newRelayBatcher(p *puller) *relayBatcher {
	return &relayBatcher{p: p, kick: make(chan struct{}, 1), pending: map[peer.ID][]pullJob{}}
}

func (r *relayBatcher) add(j pullJob) {
	r.mu.Lock()
	r.pending[j.via] = append(r.pending[j.via], j)
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *relayBatcher) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
		select { // gather what arrives meanwhile
		case <-ctx.Done():
			return
		case <-time.After(relayWindow):
		}
		r.mu.Lock()
		batches := r.pending
		r.pending = map[peer.ID][]pullJob{}
		r.mu.Unlock()
		for via, jobs := range batches {
			for len(jobs) > 0 {
				n := min(len(jobs), lp.MaxQueryPeerIDs)
				r.ask(ctx, via, jobs[:n])
				jobs = jobs[n:]
			}
		}
	}
}

// ask queries one relay for a batch of executors and applies each
// envelope it returns, after checking it as if pulled from the executor.
func (r *relayBatcher) ask(ctx context.Context, via peer.ID, jobs []pullJob) {
	p := r.p
	defer func() {
		for _, j := range jobs {
			p.finish(j.executor)
		}
	}()
	ids := make([][]byte, len(jobs))
	for i, j := range jobs {
		ids[i] = []byte(j.executor)
	}
	envs, err := r.query(ctx, via, ids)
	for _, j := range jobs {
		env, ok := envs[j.executor]
		switch {
		case err != nil:
			p.apply(j, nil, fmt.Errorf("relay %s: %w", via, err))
		case !ok:
			p.apply(j, nil, fmt.Errorf("relay %s does not know the executor", via))
		default:
			p.apply(j, env, nil)
		}
	}
}

func (r *relayBatcher) query(ctx context.Context, via peer.ID, ids [][]byte) (map[peer.ID][]byte, error) {
	p := r.p
	req, err := proto.Marshal(&pb.QueryRequest{
		QueryId: 1,
		Network: p.v.cfg.Network,
		Query:   &pb.QueryRequest_ExecutorInfo{ExecutorInfo: &pb.ExecutorInfoQuery{PeerIds: ids}},
		Filters: &pb.QueryFilters{IncludeStale: true, IncludeUnavailable: true},
	})
	if err != nil {
		return nil, err
	}
	b, err := node.Call(ctx, p.v.h, via, lp.QueryProtocol, req, lp.MaxResponseSize, p.v.cfg.PullTimeout)
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
	out := make(map[peer.ID][]byte, len(resp.GetExecutors().GetExecutors()))
	for _, e := range resp.GetExecutors().GetExecutors() {
		out[peer.ID(e.GetPeerId())] = e.GetAnnouncementEnvelope()
	}
	return out, nil
}
