package registry

import (
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// liveness is what the registry knows of an executor's liveness check
// (DESIGN §10): an executor is admitted unverified and becomes verified
// once the validator reached it and it proved its key (Reached).
type liveness struct {
	verified bool
	// group is the observed address group of the verifying connection,
	// while verified.
	group netip.Prefix
	// failures counts checks in a row that failed or found the group
	// full; it sets the backoff of the next check.
	failures int
	// nextCheck is when an unverified executor is due a check.
	nextCheck time.Time
}

// Backoff of liveness checks: 1 s after the first failure, doubling, at
// most maxCheckBackoff.
const (
	firstCheckBackoff = time.Second
	maxCheckBackoff   = time.Minute
)

func checkBackoff(failures int) time.Duration {
	if failures < 1 {
		return firstCheckBackoff
	}
	d := firstCheckBackoff << min(failures-1, 16)
	return min(d, maxCheckBackoff)
}

// AddrGroup is the address group that MaxPerIP counts: an IPv4 address
// (also one mapped into IPv6), or an IPv6 /64. An invalid address, which
// no IP transport produces, falls in one group of its own.
func AddrGroup(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return netip.Prefix{}
	case ip.Is4():
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.WithZone("").Prefix(64)
	return p
}

// ReachResult says what a successful liveness check changed.
type ReachResult struct {
	// Applied: the announcement the executor answered with was newer than
	// the one held, and Announcement says what it changed.
	Applied      bool
	Announcement AnnounceResult
	// Verified: the executor is verified now; Promoted: it was not before.
	Verified, Promoted bool
	// Crowded: the executor proved its key, but MaxPerIP executors of its
	// address group are verified already; it stays unverified.
	Crowded bool
	// Evicted is the executor that made room in a full registry, if any.
	Evicted peer.ID
}

// Reached records a successful liveness check of the executor that signed
// a: the validator opened a stream to it, the stream's remote peer was the
// executor (Noise authenticates it), and it answered the announcement pull
// protocol with a, its current announcement. observed is the remote IP of
// that connection, never an address the executor claims.
//
// The announcement is applied if it is newer than the one held. The
// executor becomes verified unless its address group is full (MaxPerIP).
// An executor not yet registered is registered verified; when the registry
// is full it evicts the worst entry: an unverified one (the oldest), else
// the stalest stale one, else the youngest of the most crowded address
// group if that group holds at least two more verified executors than the
// newcomer's. If none qualifies, the error matches
// protocol.ErrRegistryFull.
func (r *Registry) Reached(a *protocol.VerifiedAnnouncement, observed netip.Addr, now time.Time) (ReachResult, error) {
	if !a.Valid() {
		return ReachResult{}, errNotVerified
	}
	id := a.Signer()
	group := AddrGroup(observed)

	r.mu.Lock()
	defer r.mu.Unlock()

	e := r.executors[id]
	wasVerified, wasStale := e != nil && e.verified, e != nil && e.staleReported
	seq := a.Announcement().GetSeq()
	if e == nil || a.Announcement().GetKind() == pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL {
		// A newcomer's answer passes the replay rules like any
		// announcement; so does a REMOVAL, the answer of an executor that
		// withdrew. A known executor may answer with what is held.
		if err := r.checkSeq(id, e, seq); err != nil {
			return ReachResult{}, err
		}
	}
	if a.Announcement().GetKind() == pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL {
		res, err := r.applyLocked(id, a.Announcement(), a.Raw(), now)
		return ReachResult{Applied: err == nil, Announcement: res}, err
	}
	crowded := r.cfg.MaxPerIP > 0 && r.groups[group] >= r.cfg.MaxPerIP &&
		(e == nil || !e.verified || e.group != group)
	var res ReachResult
	if e == nil {
		if err := r.checkBudget(id, a.Announcement(), a.Raw()); err != nil {
			return ReachResult{}, err // before any eviction
		}
		if len(r.executors) >= r.cfg.MaxExecutors {
			if crowded {
				return ReachResult{Crowded: true}, protocol.Errorf(protocol.ErrRegistryFull.Code,
					"registry full, and %d executors of %s are verified already", r.groups[group], group)
			}
			victim := r.victim(group, now)
			if victim == nil {
				return ReachResult{}, protocol.Errorf(protocol.ErrRegistryFull.Code,
					"registry full: the limit of %d executors is reached and no entry is worse than a newcomer", r.cfg.MaxExecutors)
			}
			res.Evicted = victim.id
			r.record(ChangeRemoved, victim, now, victim.verified, nil, nil)
			r.remove(victim)
			r.evicted++
		}
		ar, err := r.applyLocked(id, a.Announcement(), a.Raw(), now)
		if err != nil {
			return ReachResult{}, err
		}
		res.Applied, res.Announcement = true, ar
		e = r.executors[id]
	} else if seq > e.annSeq {
		ar, err := r.applyLocked(id, a.Announcement(), a.Raw(), now)
		if err != nil {
			return ReachResult{}, err
		}
		res.Applied, res.Announcement = true, ar
	} else {
		// Reaching the executor is proof of life too.
		r.touch(e, now)
	}
	if crowded {
		e.failures++
		e.nextCheck = now.Add(checkBackoff(e.failures))
		r.setVerified(e, false, netip.Prefix{})
		r.recordReach(e, now, wasVerified, wasStale, res.Applied)
		res.Crowded = true
		return res, nil
	}
	e.failures = 0
	e.nextCheck = time.Time{}
	res.Promoted = !e.verified
	r.setVerified(e, true, group)
	r.recordReach(e, now, wasVerified, wasStale, res.Applied)
	res.Verified = true
	return res, nil
}

// CheckFailed records a liveness check of id that failed: the executor
// could not be reached, did not answer the pull protocol, or answered with
// an envelope that is not its own. It stays (or becomes) unverified and is
// checked again after a backoff. It reports whether id is registered.
func (r *Registry) CheckFailed(id peer.ID, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.executors[id]
	if e == nil {
		return false
	}
	e.failures++
	e.nextCheck = now.Add(checkBackoff(e.failures))
	if e.verified {
		r.setVerified(e, false, netip.Prefix{})
		r.record(ChangeUpdated, e, now, true, nil, nil)
	}
	return true
}

// Check names an executor due a liveness check, with its announced
// addresses to dial.
type Check struct {
	ID    peer.ID
	Addrs [][]byte
}

// DueChecks returns up to max unverified executors whose next check is
// due, and pushes their next check past the backoff, so that a check the
// caller could not run is asked for again later.
func (r *Registry) DueChecks(now time.Time, max int) []Check {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unverified == 0 {
		return nil
	}
	var out []Check
	for _, e := range r.executors {
		if len(out) >= max {
			break
		}
		if e.verified || e.nextCheck.After(now) {
			continue
		}
		e.nextCheck = now.Add(checkBackoff(e.failures + 1))
		out = append(out, Check{ID: e.id, Addrs: e.addrs})
	}
	return out
}

// Addrs returns the addresses id announced, or nil if it is not
// registered; the caller must not modify them.
func (r *Registry) Addrs(id peer.ID) [][]byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e := r.executors[id]; e != nil {
		return e.addrs
	}
	return nil
}

// Verified reports whether id is registered and verified.
func (r *Registry) Verified(id peer.ID) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e := r.executors[id]
	return e != nil && e.verified
}

// setVerified moves e in or out of the verified set, keeping the group
// counts and its models' mirror of the state.
func (r *Registry) setVerified(e *executor, verified bool, group netip.Prefix) {
	if e.verified == verified && e.group == group {
		return
	}
	if e.verified {
		if r.groups[e.group]--; r.groups[e.group] <= 0 {
			delete(r.groups, e.group)
		}
	} else {
		r.unverified--
	}
	e.verified, e.group = verified, group
	if verified {
		r.groups[group]++
	} else {
		e.group = netip.Prefix{}
		r.unverified++
	}
	r.syncSlots(e) // the slots mirror the state, so that queries need not reach e
}

// victim picks the entry a verified newcomer of group may evict from a
// full registry, or nil: the oldest unverified entry, else the stalest
// stale one, else the youngest of the most crowded group if that group
// holds at least two more verified executors than the newcomer's would
// before it joins (so that honest executors of distinct addresses never
// push each other out).
func (r *Registry) victim(group netip.Prefix, now time.Time) *executor {
	var unverified, stalest *executor
	for _, e := range r.executors {
		switch {
		case !e.verified:
			if unverified == nil || e.registered.Before(unverified.registered) {
				unverified = e
			}
		case r.stale(e, now):
			if stalest == nil || e.lastSeen.Before(stalest.lastSeen) {
				stalest = e
			}
		}
	}
	if unverified != nil {
		return unverified
	}
	if stalest != nil {
		return stalest
	}
	var crowded netip.Prefix
	most := 0
	for g, n := range r.groups {
		if n > most || n == most && g.Addr().Less(crowded.Addr()) {
			crowded, most = g, n
		}
	}
	if most < r.groups[group]+2 {
		return nil
	}
	var youngest *executor
	for _, e := range r.executors {
		if e.verified && e.group == crowded && (youngest == nil || e.registered.After(youngest.registered)) {
			youngest = e
		}
	}
	return youngest
}
