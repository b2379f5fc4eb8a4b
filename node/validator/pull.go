package validator

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	lp "github.com/lloom/lloom/protocol"
)

// Bounds of the work that remote peers can make a validator do (DESIGN §10:
// pulls triggered by unknown executors are capped per relay and in total).
// Past a bound the job is dropped; the executor's next heartbeat, or the
// sweep's next due check, asks again.
const (
	laneJobs      = 64                     // checks and pulls waiting per lane
	laneWorkers   = 4                      // running at once per lane
	relayJobs     = 4 * lp.MaxQueryPeerIDs // relay pulls waiting per relay
	maxLanes      = 1024                   // lanes at once
	maxPending    = 16384                  // jobs waiting in all lanes together
	maxDials      = 64                     // dials to announced addresses at once
	maxStreams    = 192                    // pull streams at once, within the resource manager's 256
	maxTracked    = 65536                  // executors whose last pull time is kept
	maxJobAddrs   = 8                      // announced addresses tried per check
	minPullPeriod = time.Second            // between two heartbeat-triggered pulls of one executor
	relayWindow   = 50 * time.Millisecond
)

// recheckLane is the lane of due re-checks of executors the validator is
// not connected to, which no relay asked for.
const recheckLane peer.ID = ""

type jobKind int

const (
	// jobCheck is a liveness check (§10): pull from the executor itself.
	jobCheck jobKind = iota
	// jobPull fetches an announcement a heartbeat named (§4): from the
	// executor itself, else from the peer that relayed the heartbeat.
	jobPull
)

// pullJob is one pull of an executor's announcement.
type pullJob struct {
	kind     jobKind
	executor peer.ID
	addrs    [][]byte // announced addresses, dialed when not connected
	vouched  uint64   // jobPull: the heartbeat's announcement_seq
	via      peer.ID  // the peer that delivered the message that asked
}

// lane is the work of one peer: the executor itself when the validator is
// connected to it, else the relay that delivered the message. Lanes run
// independently, each with its own few workers, so that a slow or hostile
// peer stalls only its own lane.
type lane struct {
	key      peer.ID
	jobs     []pullJob // direct pulls and checks
	relay    []pullJob // pulls waiting for one batched query to key
	workers  int
	batching bool
}

// puller runs announcement pulls and liveness checks in lanes. Jobs are
// deduplicated per executor; heartbeat-triggered pulls of one executor
// come at most once per minPullPeriod.
type puller struct {
	v       *Validator
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	dials   chan struct{} // semaphore of dials to announced addresses
	streams chan struct{} // semaphore of pull streams

	mu      sync.Mutex
	lanes   map[peer.ID]*lane     // guarded by mu
	busy    map[peer.ID]struct{}  // guarded by mu: executors with a job waiting or running
	last    map[peer.ID]time.Time // guarded by mu: start of the last heartbeat-triggered pull
	pending int                   // guarded by mu: jobs waiting in all lanes
	closed  bool                  // guarded by mu

	dropped atomic.Uint64 // jobs dropped at a bound
	relays  relayBook
}

func newPuller(v *Validator) *puller {
	ctx, cancel := context.WithCancel(context.Background())
	return &puller{
		v: v, ctx: ctx, cancel: cancel,
		dials: make(chan struct{}, maxDials), streams: make(chan struct{}, maxStreams),
		lanes: map[peer.ID]*lane{}, busy: map[peer.ID]struct{}{}, last: map[peer.ID]time.Time{},
		relays: relayBook{bad: map[peer.ID]*badRelay{}},
	}
}

// pull asks for the announcement a verified heartbeat of executor named
// (rule 7); via relayed the heartbeat.
func (p *puller) pull(executor peer.ID, vouched uint64, via peer.ID) {
	now := time.Now() // pull times are wall-clock, like the rate limit of queries
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.last[executor]; ok && now.Sub(t) < minPullPeriod {
		return
	}
	if p.enqueueLocked(pullJob{kind: jobPull, executor: executor, addrs: p.v.reg.Addrs(executor), vouched: vouched, via: via}) &&
		len(p.last) < maxTracked { // past it, only the lanes bound repeated pulls
		p.last[executor] = now
	}
}

// check asks for a liveness check of executor (rule 6), which announced
// addrs; via delivered the announcement ("" for the sweep's re-checks).
func (p *puller) check(executor peer.ID, addrs [][]byte, via peer.ID) {
	if len(addrs) > maxJobAddrs {
		addrs = addrs[:maxJobAddrs]
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.enqueueLocked(pullJob{kind: jobCheck, executor: executor, addrs: addrs, via: via})
}

// enqueueLocked puts j in its lane, starting a worker if the lane has
// room for one; it reports whether j was taken.
func (p *puller) enqueueLocked(j pullJob) bool {
	if p.closed {
		return false
	}
	if _, ok := p.busy[j.executor]; ok {
		return false
	}
	key := j.via
	if p.v.h.Network().Connectedness(j.executor) == network.Connected {
		key = j.executor // its own connection: its own lane
	}
	l := p.laneLocked(key)
	if l == nil || len(l.jobs) >= laneJobs || p.pending >= maxPending {
		p.dropped.Add(1)
		p.v.pullStats.add(pullKind(j.kind), pullDropped)
		return false
	}
	l.jobs = append(l.jobs, j)
	p.busy[j.executor] = struct{}{}
	p.pending++
	p.startLocked(l)
	return true
}

// toRelay hands a job whose direct pull failed to the lane of its relay,
// to be asked in a batch. The executor stays busy until then.
func (p *puller) toRelay(j pullJob) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.laneLocked(j.via)
	if p.closed || l == nil || len(l.relay) >= relayJobs || p.pending >= maxPending {
		p.dropped.Add(1)
		p.v.pullStats.add(pullRelay, pullDropped)
		delete(p.busy, j.executor)
		return
	}
	l.relay = append(l.relay, j)
	p.pending++
	p.startLocked(l)
}

func (p *puller) laneLocked(key peer.ID) *lane {
	l := p.lanes[key]
	if l == nil {
		if len(p.lanes) >= maxLanes {
			return nil
		}
		l = &lane{key: key}
		p.lanes[key] = l
	}
	return l
}

func (p *puller) startLocked(l *lane) {
	if l.workers < laneWorkers {
		l.workers++
		p.wg.Add(1)
		go p.work(l)
	}
}

func (p *puller) finish(executor peer.ID) {
	p.mu.Lock()
	delete(p.busy, executor)
	p.mu.Unlock()
}

// work runs l's jobs until none is left: direct pulls first, then one
// batched query to the relay for the pulls that need it.
func (p *puller) work(l *lane) {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		switch {
		case p.ctx.Err() == nil && len(l.jobs) > 0:
			j := l.jobs[0]
			l.jobs[0] = pullJob{}
			l.jobs = l.jobs[1:]
			p.pending--
			p.mu.Unlock()
			p.run(j)
		case p.ctx.Err() == nil && len(l.relay) > 0 && !l.batching:
			l.batching = true
			p.mu.Unlock()
			p.batch(l)
		default:
			l.workers--
			if l.workers == 0 {
				for _, j := range append(l.jobs, l.relay...) { // only when closing
					delete(p.busy, j.executor)
					p.pending--
				}
				delete(p.lanes, l.key)
			}
			p.mu.Unlock()
			return
		}
	}
}

// batch waits a moment for more relay pulls to gather, then asks the
// relay for up to MaxQueryPeerIDs of them in one query.
func (p *puller) batch(l *lane) {
	select {
	case <-p.ctx.Done():
	case <-time.After(relayWindow):
	}
	p.mu.Lock()
	n := min(len(l.relay), lp.MaxQueryPeerIDs)
	jobs := append([]pullJob(nil), l.relay[:n]...)
	clear(l.relay[:n])
	l.relay = l.relay[n:]
	p.pending -= n
	l.batching = false
	p.mu.Unlock()
	p.ask(l.key, jobs)
}

// run pulls j's announcement from the executor itself. A failed check
// leaves the executor unverified, checked again after a backoff; a failed
// pull of an announcement the registry still lacks goes to the relay.
func (p *puller) run(j pullJob) {
	v := p.v
	env, observed, err := p.fetch(j)
	if err != nil {
		v.pullStats.add(pullKind(j.kind), pullFailed)
	} else {
		err = v.acceptPulled(j, env, observed)
		v.pullStats.add(pullKind(j.kind), verdictResult(err))
		if err == nil || verdictOf(err) != pubsub.ValidationReject {
			p.finish(j.executor)
			if err != nil {
				v.log.Debug().Err(err).Stringer("executor", j.executor).Msg("Pulled announcement not applied")
			}
			return
		}
	}
	if j.kind == jobCheck || !v.reg.Verified(j.executor) {
		// A failed pull of a verified executor (it may be busy) is no
		// proof that it is gone: its heartbeats are.
		v.reg.CheckFailed(j.executor, v.cfg.Now())
	}
	if j.kind == jobPull && j.via != "" && j.via != j.executor && !p.relays.isBad(j.via, time.Now()) && p.lacks(j) {
		p.toRelay(j)
		return
	}
	p.finish(j.executor)
	v.log.Debug().Err(err).Stringer("executor", j.executor).Str("kind", [...]string{"check", "pull"}[j.kind]).
		Msg("Announcement pull failed; the next heartbeat or check retries")
}

// lacks reports whether the registry still lacks the announcement j is
// for.
func (p *puller) lacks(j pullJob) bool {
	seq, known := p.v.reg.AnnouncementSeq(j.executor)
	return !known || seq < j.vouched
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
	p.relays.forget(now)
}

// close stops the workers and waits for them; jobs waiting are dropped.
func (p *puller) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
}
