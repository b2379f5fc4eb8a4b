package registry

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// tombstone remembers a REMOVAL so that an older announcement cannot bring
// the executor back; the heartbeat seq is kept for the same reason.
type tombstone struct {
	seq   uint64
	hbSeq uint64
	// until is when the last announcement older than the REMOVAL stops
	// being fresh: RemoveAfter past the later of the REMOVAL's arrival and
	// its issue time (an older announcement was issued no later).
	until time.Time
}

// tombstones holds at most max tombstones, the oldest going first when a
// new one needs room. Only executors that were verified leave one (see
// bury), so strangers cannot push out others' tombstones with REMOVALs of
// fresh keys: each tombstone costs a key that proved itself live.
type tombstones struct {
	max   int
	m     map[peer.ID]tombstone
	order []tombEntry // arrival order; entries whose tombstone changed are skipped
	head  int         // order[:head] are consumed
}

type tombEntry struct {
	id    peer.ID
	until time.Time
}

func newTombstones(max int) tombstones {
	return tombstones{max: max, m: make(map[peer.ID]tombstone)}
}

func (ts *tombstones) get(id peer.ID) (tombstone, bool) {
	t, ok := ts.m[id]
	return t, ok
}

func (ts *tombstones) len() int { return len(ts.m) }

// put records or replaces id's tombstone, evicting the oldest when full.
func (ts *tombstones) put(id peer.ID, t tombstone) {
	if _, ok := ts.m[id]; !ok {
		for len(ts.m) >= ts.max {
			ts.evictOldest()
		}
	}
	ts.m[id] = t
	ts.order = append(ts.order, tombEntry{id: id, until: t.until})
}

func (ts *tombstones) delete(id peer.ID) {
	delete(ts.m, id)
	ts.compact()
}

// evictOldest drops the tombstone that arrived first among those held.
func (ts *tombstones) evictOldest() {
	for ts.head < len(ts.order) {
		e := ts.order[ts.head]
		ts.order[ts.head] = tombEntry{}
		ts.head++
		if t, ok := ts.m[e.id]; ok && t.until.Equal(e.until) {
			delete(ts.m, e.id)
			break
		}
	}
	ts.compact()
}

// expire drops the tombstones past their time.
func (ts *tombstones) expire(now time.Time) {
	for id, t := range ts.m {
		if now.After(t.until) {
			delete(ts.m, id)
		}
	}
	ts.compact()
}

// compact keeps the arrival queue within twice the tombstones held, so
// that replaced and deleted entries cost no memory for long.
func (ts *tombstones) compact() {
	if len(ts.order)-ts.head <= 2*len(ts.m)+64 {
		if ts.head > len(ts.order)/2 {
			ts.order = append([]tombEntry(nil), ts.order[ts.head:]...)
			ts.head = 0
		}
		return
	}
	kept := make([]tombEntry, 0, len(ts.m))
	for _, e := range ts.order[ts.head:] {
		if t, ok := ts.m[e.id]; ok && t.until.Equal(e.until) {
			kept = append(kept, e)
		}
	}
	ts.order, ts.head = kept, 0
}
