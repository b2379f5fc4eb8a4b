package registry

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/protocol/pb"
)

// Registry holds the executors a validator knows. It is safe for concurrent
// use; see the package comment for what it trusts its caller with.
type Registry struct {
	cfg Config

	mu         sync.RWMutex
	executors  map[peer.ID]*executor  // guarded by mu
	models     map[string]*modelIndex // guarded by mu; model id -> executors serving it
	tombs      tombstones             // guarded by mu; verified executors removed by a REMOVAL
	groups     map[netip.Prefix]int   // guarded by mu; verified executors per observed address group
	unverified int                    // guarded by mu; executors not verified
	profiles   map[string]*profile    // guarded by mu; interned descriptor profiles
	profNos    profileNumbers         // guarded by mu; the profiles by number, for slots (index.go)
	scratch    []byte                 // guarded by mu; builds profile keys
	removed    uint64                 // guarded by mu; executors removed so far, for Stats
	evicted    uint64                 // guarded by mu; executors evicted for a verified newcomer
	modelsGen  uint64                 // guarded by mu; changes when a model id comes or goes
	epoch      time.Time              // guarded by mu; slots count time from it (index.go)
	ids        idCache                // the model ids sorted, for lists (index.go)
	log        *changeLog             // appended under mu (write); has its own lock (changes.go)
}

// executor is what the registry keeps of one executor. The envelopes are
// kept as received; of the decoded messages only what queries need stays.
type executor struct {
	id         peer.ID
	idKey      [2]uint64 // the first 16 bytes of id, for sorting without touching id
	annSeq     uint64
	hbSeq      uint64 // 0 until the first heartbeat
	annRaw     []byte
	hbRaw      []byte
	addrs      [][]byte
	models     []model
	registered time.Time
	lastSeen   time.Time
	// staleReported is set once Sweep has reported the executor stale, so
	// that it reports it once per stale spell.
	staleReported bool
	liveness
}

// model is one model an executor serves: its descriptor's profile and the
// load of the latest heartbeat.
type model struct {
	id     string // shared with the index key
	prof   *profile
	active uint32 // from the latest heartbeat
	queued uint32
	hbCap  uint32 // capacity from the latest heartbeat; 0 = as announced
	pos    int32  // position of this model's slot in its modelIndex
}

// New returns an empty registry.
func New(cfg Config) (*Registry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Registry{
		cfg:       cfg,
		executors: make(map[peer.ID]*executor),
		models:    make(map[string]*modelIndex),
		tombs:     newTombstones(cfg.MaxTombstones),
		groups:    make(map[netip.Prefix]int),
		profiles:  make(map[string]*profile),
		log:       newChangeLog(cfg.History, cfg.HistoryBytes, cfg.FirstVersion),
	}, nil
}

// Len returns the number of executors held.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.executors)
}

// AnnouncementSeq returns the seq of the announcement held for id, or of its
// tombstone if it was removed by a REMOVAL. A tombstone past RemoveAfter
// still counts here until Sweep drops it. It is the topic validator's cheap
// replay check, made before the signature is verified.
func (r *Registry) AnnouncementSeq(id peer.ID) (seq uint64, known bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e, ok := r.executors[id]; ok {
		return e.annSeq, true
	}
	if t, ok := r.tombs.get(id); ok {
		return t.seq, true
	}
	return 0, false
}

// HeartbeatSeq returns the seq of the latest heartbeat held for id; known is
// false for an executor not registered.
func (r *Registry) HeartbeatSeq(id peer.ID) (seq uint64, known bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e, ok := r.executors[id]; ok {
		return e.hbSeq, true
	}
	return 0, false
}

// Get returns the executor-level entry of id: its status, and the load of
// every model it serves.
func (r *Registry) Get(id peer.ID, now time.Time) (*pb.ExecutorEntry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.executors[id]
	if !ok {
		return nil, false
	}
	return r.executorEntry(e, now), true
}

// remove forgets e entirely.
func (r *Registry) remove(e *executor) {
	r.unindex(e)
	r.setVerified(e, false, netip.Prefix{})
	r.unverified--
	delete(r.executors, e.id)
	r.removed++
}

// idPrefix returns the first 16 bytes of id as two big-endian numbers,
// zero-padded: comparing them orders ids as their bytes do, up to the
// first 16 bytes.
func idPrefix(id peer.ID) [2]uint64 {
	var b [16]byte
	copy(b[:], id)
	return [2]uint64{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// modelIDs returns the ids of e's models, in announcement order.
func (e *executor) modelIDs() []string {
	ids := make([]string, len(e.models))
	for i := range e.models {
		ids[i] = e.models[i].id
	}
	return ids
}
