package registry

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// ErrOverBudget matches an announcement or heartbeat refused because the
// executor's entry would pass MaxEntryBytes. Its contract code is 2005,
// model limit exceeded. The budget is this validator's, so the message is
// no fault of a peer that relays it.
var ErrOverBudget = errors.New("registry: over the per-executor byte budget")

// errNotVerified refuses the zero value of a verified message type: only
// package protocol's verifying functions make a valid one.
var errNotVerified = protocol.Errorf(protocol.ErrInternal.Code, "registry: message not made by a verifying function")

// AnnounceResult says what an announcement changed.
type AnnounceResult struct {
	New       bool     // the executor was not registered before
	Removed   bool     // a REMOVAL removed a registered executor
	Recovered bool     // the executor was stale and is live again
	Added     []string // model ids not in the previous set, in announcement order
	Dropped   []string // model ids of the previous set no longer listed
	// Check asks the caller for a liveness check now (Reached or
	// CheckFailed): the executor is new, or its addresses changed.
	Check bool
}

// HeartbeatResult says what a heartbeat changed and whether the caller
// should pull the executor's current announcement.
type HeartbeatResult struct {
	Known     bool // the executor is registered; an unknown one registers nothing
	NeedPull  bool // the registry lacks the announcement the heartbeat names
	Recovered bool // the executor was stale and is live again
}

// ApplyAnnouncement stores an announcement, as it came by gossip or from a
// relay. INITIAL and UPDATE replace the executor's whole model set (an
// UPDATE from an unknown executor registers it); the load of models still
// listed is kept. An executor not registered before is admitted
// unverified: hidden from queries until Reached. REMOVAL removes the
// executor at once and, if it was verified, leaves a tombstone so that an
// older announcement cannot bring it back; a newer one may. The registry
// keeps a.Raw(), which nobody may modify afterwards.
//
// Errors match protocol.ErrReplay for a seq not newer than the one held or
// than the tombstone's, protocol.ErrRegistryFull for a new executor when
// MaxExecutors are registered (only a verified newcomer may evict, see
// Reached), and ErrOverBudget for an entry that would pass MaxEntryBytes.
func (r *Registry) ApplyAnnouncement(a *protocol.VerifiedAnnouncement, now time.Time) (AnnounceResult, error) {
	if !a.Valid() {
		return AnnounceResult{}, errNotVerified
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applyLocked(a.Signer(), a.Announcement(), a.Raw(), now)
}

// CheckAnnouncementSeq applies the replay rule to an announcement of id
// with seq: it must be newer than the announcement held and than the
// tombstone of a REMOVAL. The topic validator asks before it checks a
// signature; ApplyAnnouncement asks again under the write lock, since
// another message may have been applied in between.
func (r *Registry) CheckAnnouncementSeq(id peer.ID, seq uint64, now time.Time) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.checkSeqAt(id, r.executors[id], seq, now)
}

// CheckHeartbeatSeq is CheckAnnouncementSeq for heartbeats of registered
// executors; a heartbeat of an unknown executor passes (it registers
// nothing and may ask for a pull).
func (r *Registry) CheckHeartbeatSeq(id peer.ID, seq uint64) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e := r.executors[id]; e != nil && seq <= e.hbSeq {
		return protocol.Errorf(protocol.ErrReplay.Code, "heartbeat seq %d of %s is not newer than the held %d", seq, id, e.hbSeq)
	}
	return nil
}

func (r *Registry) checkSeq(id peer.ID, e *executor, seq uint64) error {
	return r.checkSeqAt(id, e, seq, time.Time{})
}

// checkSeqAt is the replay rule; a tombstone past its time (now set) no
// longer counts.
func (r *Registry) checkSeqAt(id peer.ID, e *executor, seq uint64, now time.Time) error {
	if e != nil {
		if seq <= e.annSeq {
			return protocol.Errorf(protocol.ErrReplay.Code,
				"announcement seq %d of %s is not newer than the held %d", seq, id, e.annSeq)
		}
		return nil
	}
	if t, ok := r.tombs.get(id); ok && seq <= t.seq && (now.IsZero() || !now.After(t.until)) {
		return protocol.Errorf(protocol.ErrReplay.Code,
			"announcement seq %d of %s is not newer than its removal at seq %d", seq, id, t.seq)
	}
	return nil
}

// applyLocked is ApplyAnnouncement under the write lock, for an
// announcement signed by id.
func (r *Registry) applyLocked(id peer.ID, a *pb.Announcement, raw []byte, now time.Time) (AnnounceResult, error) {
	seq := a.GetSeq()
	e := r.executors[id]
	tomb, hasTomb := r.tombs.get(id)
	if hasTomb && now.After(tomb.until) {
		r.tombs.delete(id)
		hasTomb = false
	}
	if err := r.checkSeq(id, e, seq); err != nil {
		return AnnounceResult{}, err
	}

	if a.GetKind() == pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL {
		var res AnnounceResult
		t := tombstone{seq: seq, hbSeq: tomb.hbSeq, until: later(now, time.UnixMilli(a.GetIssuedAtMs())).Add(r.cfg.RemoveAfter)}
		switch {
		case e != nil:
			res.Removed = true
			res.Dropped = e.modelIDs()
			t.hbSeq = e.hbSeq
			verified := e.verified
			r.record(ChangeRemoved, e, now, verified, nil, nil)
			r.remove(e)
			if verified {
				r.tombs.put(id, t)
			}
		case hasTomb:
			// A newer REMOVAL of a removed executor keeps its tombstone
			// current; a REMOVAL of a key never registered leaves none.
			r.tombs.put(id, t)
		}
		return res, nil
	}

	if err := r.checkBudget(id, a, raw); err != nil {
		return AnnounceResult{}, err
	}
	var res AnnounceResult
	if e == nil {
		if len(r.executors) >= r.cfg.MaxExecutors {
			return AnnounceResult{}, protocol.Errorf(protocol.ErrRegistryFull.Code,
				"registry full: the limit of %d executors is reached; a newcomer gets in once verified", r.cfg.MaxExecutors)
		}
		e = &executor{id: id, idKey: idPrefix(id), registered: now}
		if hasTomb {
			// Heartbeats from before the removal stay replays.
			e.hbSeq = tomb.hbSeq
		}
		r.executors[id] = e
		r.unverified++
		e.nextCheck = now.Add(checkBackoff(0))
		res.New, res.Check = true, true
	} else {
		res.Recovered = r.stale(e, now)
		if !slices.EqualFunc(e.addrs, a.GetAddrs(), bytes.Equal) {
			// Re-check where it says it is now; a verified executor
			// stays verified unless the check fails.
			res.Check = true
			if !e.verified {
				e.failures = 0
				e.nextCheck = now.Add(checkBackoff(0))
			}
		}
	}
	if hasTomb {
		r.tombs.delete(id)
	}

	models := make([]model, len(a.GetModels()))
	for i, d := range a.GetModels() {
		models[i] = model{id: d.GetModelId(), prof: r.acquire(d)}
		if old := e.find(models[i].id); old != nil {
			models[i].active, models[i].queued, models[i].hbCap = old.active, old.queued, old.hbCap
		} else {
			res.Added = append(res.Added, models[i].id)
		}
	}
	for i := range e.models {
		if !hasModel(models, e.models[i].id) {
			res.Dropped = append(res.Dropped, e.models[i].id)
		}
	}
	r.unindex(e)
	e.models = models
	r.index(e)

	e.annSeq = seq
	e.annRaw = raw
	e.addrs = a.GetAddrs()
	if len(e.hbRaw) > heartbeatAllowance(len(models)) {
		e.hbRaw = nil // from a larger model set; the next heartbeat brings one
	}
	r.touch(e, now)
	if res.New {
		r.record(ChangeAdded, e, now, false, res.Added, nil)
	} else {
		r.record(ChangeUpdated, e, now, e.verified, res.Added, res.Dropped)
	}
	return res, nil
}

// ApplyHeartbeat records a heartbeat. A heartbeat from an unknown executor
// registers nothing and asks for a pull, unless it names an announcement
// no newer than the executor's REMOVAL. A heartbeat naming an older
// announcement than the one held still counts for liveness and load.
// Models of the heartbeat that the announcement does not list are
// ignored; listed models it leaves out get no load. The registry keeps
// h.Raw(), which nobody may modify afterwards.
//
// The error matches protocol.ErrReplay for a seq not newer than the held
// one, and ErrOverBudget for a heartbeat larger than its announcement's
// models need (heartbeatAllowance).
func (r *Registry) ApplyHeartbeat(v *protocol.VerifiedHeartbeat, now time.Time) (HeartbeatResult, error) {
	if !v.Valid() {
		return HeartbeatResult{}, errNotVerified
	}
	return r.applyHeartbeat(v.Heartbeat(), v.Raw(), now)
}

func (r *Registry) applyHeartbeat(h *pb.Heartbeat, raw []byte, now time.Time) (HeartbeatResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()

	// Indexing with the conversion inline does not allocate.
	e := r.executors[peer.ID(h.GetExecutorId())]
	if e == nil {
		t, ok := r.tombs.get(peer.ID(h.GetExecutorId()))
		removed := ok && !now.After(t.until) && h.GetAnnouncementSeq() <= t.seq
		return HeartbeatResult{NeedPull: !removed}, nil
	}
	if h.GetSeq() <= e.hbSeq {
		return HeartbeatResult{Known: true}, protocol.Errorf(protocol.ErrReplay.Code,
			"heartbeat seq %d of %s is not newer than the held %d", h.GetSeq(), e.id, e.hbSeq)
	}
	if n, allowed := len(raw), heartbeatAllowance(len(e.models)); n > allowed {
		return HeartbeatResult{Known: true}, overBudget("heartbeat of %d bytes for %d models exceeds the %d bytes they need", n, len(e.models), allowed)
	}
	res := HeartbeatResult{
		Known:     true,
		NeedPull:  h.GetAnnouncementSeq() > e.annSeq,
		Recovered: r.stale(e, now),
	}
	var buf [16]loadOf
	before, wasStale := e.loads(buf[:0]), e.staleReported
	for i := range e.models {
		m := &e.models[i]
		m.active, m.queued, m.hbCap = 0, 0, 0
	}
	for _, l := range h.GetLoad().GetModels() {
		if m := e.find(l.GetModelId()); m != nil {
			m.active, m.queued, m.hbCap = l.GetActive(), l.GetQueued(), l.GetCapacity()
		}
	}
	e.hbSeq = h.GetSeq()
	e.hbRaw = raw
	r.touch(e, now)
	switch {
	case wasStale:
		r.record(ChangeRecovered, e, now, e.verified, nil, nil)
	case e.loadChanged(before):
		r.record(ChangeLoad, e, now, e.verified, nil, nil)
	}
	return res, nil
}

// touch marks e seen at now, ending any stale spell.
func (r *Registry) touch(e *executor, now time.Time) {
	e.lastSeen = now
	e.staleReported = false
	r.syncSlots(e)
}

// heartbeatAllowance is what a heartbeat of an executor serving n models
// may take: the envelope (key, signature, ids, counters) and one load of
// a longest model id per model.
func heartbeatAllowance(n int) int {
	const envelope, perModel = 512, protocol.MaxModelIDLen + 24
	return envelope + perModel*n
}

// checkBudget refuses an announcement whose entry could pass MaxEntryBytes:
// its envelope, its addresses, and the heartbeat allowance of its models.
func (r *Registry) checkBudget(id peer.ID, a *pb.Announcement, raw []byte) error {
	n := len(raw) + heartbeatAllowance(len(a.GetModels()))
	for _, ad := range a.GetAddrs() {
		n += len(ad)
	}
	if n > r.cfg.MaxEntryBytes {
		return overBudget("announcement of %s takes %d bytes with its heartbeat, over the budget of %d per executor; serve fewer models or shorter metadata",
			id, n, r.cfg.MaxEntryBytes)
	}
	return nil
}

func overBudget(format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrOverBudget, protocol.Errorf(protocol.ErrModelLimitExceeded.Code, format, args...))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// find returns e's model with the given id, or nil. Executors serve at most
// protocol.MaxModels models, so a scan beats a map in time and memory.
func (e *executor) find(id string) *model {
	for i := range e.models {
		if e.models[i].id == id {
			return &e.models[i]
		}
	}
	return nil
}

func hasModel(ms []model, id string) bool {
	for i := range ms {
		if ms[i].id == id {
			return true
		}
	}
	return false
}
