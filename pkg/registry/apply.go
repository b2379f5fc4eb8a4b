package registry

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// AnnounceResult says what an announcement changed.
type AnnounceResult struct {
	New       bool     // the executor was not registered before
	Removed   bool     // a REMOVAL removed a registered executor
	Recovered bool     // the executor was stale and is live again
	Added     []string // model ids not in the previous set, in announcement order
	Dropped   []string // model ids of the previous set no longer listed
}

// HeartbeatResult says what a heartbeat changed and whether the caller
// should pull the executor's current announcement.
type HeartbeatResult struct {
	Known     bool // the executor is registered; an unknown one registers nothing
	NeedPull  bool // the registry lacks the announcement the heartbeat names
	Recovered bool // the executor was stale and is live again
}

// ApplyAnnouncement stores an announcement whose envelope the caller has
// verified. INITIAL and UPDATE replace the executor's whole model set (an
// UPDATE from an unknown executor registers it); the load of models still
// listed is kept. REMOVAL removes the executor at once and leaves a tombstone
// for RemoveAfter, also for an executor not known, so that an older
// announcement cannot bring it back; a newer one may. The registry keeps
// s.Raw, which the caller must not modify afterwards.
//
// Errors match protocol.ErrReplay for a seq not newer than the one held or
// than the tombstone's, and protocol.ErrRegistryFull for a new executor when
// MaxExecutors are registered.
func (r *Registry) ApplyAnnouncement(s *protocol.SignedAnnouncement, now time.Time) (AnnounceResult, error) {
	a := s.Announcement
	id := peer.ID(a.GetExecutorId())
	seq := a.GetSeq()

	r.mu.Lock()
	defer r.mu.Unlock()

	e := r.executors[id]
	if e != nil && seq <= e.annSeq {
		return AnnounceResult{}, protocol.Errorf(protocol.ErrReplay.Code,
			"announcement seq %d of %s is not newer than the held %d", seq, id, e.annSeq)
	}
	tomb, hasTomb := r.tombstones[id]
	if hasTomb && r.expired(tomb, now) {
		delete(r.tombstones, id)
		hasTomb = false
	}
	if hasTomb && seq <= tomb.seq {
		return AnnounceResult{}, protocol.Errorf(protocol.ErrReplay.Code,
			"announcement seq %d of %s is not newer than its removal at seq %d", seq, id, tomb.seq)
	}

	if a.GetKind() == pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL {
		var res AnnounceResult
		t := tombstone{seq: seq, hbSeq: tomb.hbSeq, at: now}
		if e != nil {
			res.Removed = true
			res.Dropped = e.modelIDs()
			t.hbSeq = e.hbSeq
			r.remove(e)
		}
		r.bury(id, t)
		return res, nil
	}

	var res AnnounceResult
	if e == nil {
		if len(r.executors) >= r.cfg.MaxExecutors {
			return AnnounceResult{}, protocol.Errorf(protocol.ErrRegistryFull.Code,
				"registry full: the limit of %d executors is reached", r.cfg.MaxExecutors)
		}
		e = &executor{id: id, idKey: idPrefix(id), registered: now}
		if hasTomb {
			// Heartbeats from before the removal stay replays.
			e.hbSeq = tomb.hbSeq
		}
		r.executors[id] = e
		res.New = true
	} else {
		res.Recovered = r.stale(e, now)
	}
	if hasTomb {
		delete(r.tombstones, id)
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
	e.annRaw = s.Raw
	e.addrs = a.GetAddrs()
	r.touch(e, now)
	return res, nil
}

// ApplyHeartbeat records a heartbeat whose envelope the caller has verified.
// A heartbeat from an unknown executor registers nothing and asks for a pull,
// unless it names an announcement no newer than the executor's REMOVAL. A
// heartbeat naming an older announcement than the one held still counts for
// liveness and load. Models of the heartbeat that the announcement does not
// list are ignored; listed models it leaves out get no load. The registry
// keeps s.Raw, which the caller must not modify afterwards.
//
// The error matches protocol.ErrReplay for a seq not newer than the held one.
func (r *Registry) ApplyHeartbeat(s *protocol.SignedHeartbeat, now time.Time) (HeartbeatResult, error) {
	h := s.Heartbeat

	r.mu.Lock()
	defer r.mu.Unlock()

	// Indexing with the conversion inline does not allocate.
	e := r.executors[peer.ID(h.GetExecutorId())]
	if e == nil {
		t, ok := r.tombstones[peer.ID(h.GetExecutorId())]
		removed := ok && !r.expired(t, now) && h.GetAnnouncementSeq() <= t.seq
		return HeartbeatResult{NeedPull: !removed}, nil
	}
	if h.GetSeq() <= e.hbSeq {
		return HeartbeatResult{Known: true}, protocol.Errorf(protocol.ErrReplay.Code,
			"heartbeat seq %d of %s is not newer than the held %d", h.GetSeq(), e.id, e.hbSeq)
	}
	res := HeartbeatResult{
		Known:     true,
		NeedPull:  h.GetAnnouncementSeq() > e.annSeq,
		Recovered: r.stale(e, now),
	}
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
	e.hbRaw = s.Raw
	r.touch(e, now)
	return res, nil
}

// touch marks e seen at now, ending any stale spell.
func (r *Registry) touch(e *executor, now time.Time) {
	e.lastSeen = now
	e.staleReported = false
}

// bury records a tombstone. At MaxExecutors tombstones an arbitrary one
// makes room: that only happens under a flood of removals, and it keeps
// the registry's memory bounded whatever executors send.
func (r *Registry) bury(id peer.ID, t tombstone) {
	if _, ok := r.tombstones[id]; !ok && len(r.tombstones) >= r.cfg.MaxExecutors {
		for victim := range r.tombstones {
			delete(r.tombstones, victim)
			break
		}
	}
	r.tombstones[id] = t
}

func (r *Registry) expired(t tombstone, now time.Time) bool {
	return now.Sub(t.at) > r.cfg.RemoveAfter
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
