// Package announcer holds what an executor announces: its model set and
// the load of each model, and builds the announcements and heartbeats that
// state them, with strictly increasing sequence numbers, kept across
// restarts in a SeqStore. It is a plain data structure guarded by one
// mutex; the executor node publishes what it builds.
package announcer

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// ErrUnknownModel is returned for a model the executor does not serve.
var ErrUnknownModel = errors.New("announcer: unknown model")

// State is an executor's announced state.
type State struct {
	id peer.ID

	mu      sync.Mutex
	models  map[string]*pb.ModelDescriptor // guarded by mu
	load    map[string]*pb.ModelLoad       // guarded by mu
	annSeq  uint64                         // guarded by mu
	hbSeq   uint64                         // guarded by mu
	changed chan struct{}

	store    SeqStore      // nil: numbers come from the clock alone
	reserve  time.Duration // how far ahead of use numbers are reserved
	reserved Seqs          // guarded by mu: every number used is at most these
}

// New returns an empty state for the executor id.
func New(id peer.ID) *State {
	return &State{
		id:      id,
		models:  map[string]*pb.ModelDescriptor{},
		load:    map[string]*pb.ModelLoad{},
		changed: make(chan struct{}, 1),
	}
}

// Changed receives a value after the model set changes (coalesced).
func (s *State) Changed() <-chan struct{} { return s.changed }

// SetModels replaces the whole model set. Nothing changes if any descriptor
// is invalid or the set is too large.
func (s *State) SetModels(models []*pb.ModelDescriptor) error {
	if len(models) > lp.MaxModels {
		return fmt.Errorf("%d models exceed the limit of %d: %w", len(models), lp.MaxModels, lp.ErrModelLimitExceeded)
	}
	next := make(map[string]*pb.ModelDescriptor, len(models))
	for _, m := range models {
		if err := lp.CheckModelDescriptor(m); err != nil {
			return fmt.Errorf("model %q: %w", m.GetModelId(), err)
		}
		if _, dup := next[m.GetModelId()]; dup {
			return fmt.Errorf("model %q is listed twice", m.GetModelId())
		}
		next[m.GetModelId()] = proto.CloneOf(m)
	}
	if err := lp.CheckModelSetSize(models); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sameModels(s.models, next) {
		return nil
	}
	s.models = next
	for id := range s.load {
		if _, ok := next[id]; !ok {
			delete(s.load, id)
		}
	}
	s.bumpLocked()
	return nil
}

// PutModel adds a model or replaces the descriptor of one with the same id.
func (s *State) PutModel(m *pb.ModelDescriptor) error {
	if err := lp.CheckModelDescriptor(m); err != nil {
		return fmt.Errorf("model %q: %w", m.GetModelId(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, exists := s.models[m.GetModelId()]
	if !exists && len(s.models) >= lp.MaxModels {
		return fmt.Errorf("model %q: %d models already: %w", m.GetModelId(), len(s.models), lp.ErrModelLimitExceeded)
	}
	if exists && proto.Equal(old, m) {
		return nil
	}
	next := append(s.modelsLocked(), m)
	if exists {
		next = slices.DeleteFunc(next[:len(next)-1], func(d *pb.ModelDescriptor) bool { return d.GetModelId() == m.GetModelId() })
		next = append(next, m)
	}
	if err := lp.CheckModelSetSize(next); err != nil {
		return fmt.Errorf("model %q: %w", m.GetModelId(), err)
	}
	s.models[m.GetModelId()] = proto.CloneOf(m)
	s.bumpLocked()
	return nil
}

// RemoveModel stops serving a model.
func (s *State) RemoveModel(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.models[id]; !ok {
		return fmt.Errorf("%w %q", ErrUnknownModel, id)
	}
	delete(s.models, id)
	delete(s.load, id)
	s.bumpLocked()
	return nil
}

// Model returns a copy of one model's descriptor.
func (s *State) Model(id string) (*pb.ModelDescriptor, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.models[id]
	if !ok {
		return nil, false
	}
	return proto.CloneOf(m), true
}

// Models returns copies of the descriptors, sorted by model id.
func (s *State) Models() []*pb.ModelDescriptor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.modelsLocked()
}

// SetLoad records a model's current load; it goes out with the next
// heartbeat. capacity 0 keeps the announced capacity.
func (s *State) SetLoad(model string, active, queued, capacity uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.models[model]; !ok {
		return fmt.Errorf("%w %q", ErrUnknownModel, model)
	}
	s.load[model] = &pb.ModelLoad{ModelId: model, Active: active, Queued: queued, Capacity: capacity}
	return nil
}

// Persist makes sequence numbers survive restarts and clock steps. It
// loads what st holds, so that every number from now on is above it; then
// numbers are reserved ahead of use, reserve of clock time at once, and
// each reservation is stored before a number of it goes out: a crash never
// reuses a number, and st is written about once per reserve, not once per
// heartbeat. Close stores the numbers really used, so that after a clean
// stop the numbers continue from the clock, not from the reservation.
// Call it before the first announcement.
func (s *State) Persist(st SeqStore, reserve time.Duration) error {
	if reserve <= 0 {
		return fmt.Errorf("announcer: sequence reservation %s must be positive", reserve)
	}
	seqs, err := st.Load()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.store, s.reserve, s.reserved = st, reserve, seqs
	s.annSeq = max(s.annSeq, seqs.Announcement)
	s.hbSeq = max(s.hbSeq, seqs.Heartbeat)
	return nil
}

// Close stores the sequence numbers last used (with Persist), so that the
// next run continues from max(them + 1, the clock).
func (s *State) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store == nil {
		return nil
	}
	used := Seqs{Announcement: s.annSeq, Heartbeat: s.hbSeq}
	if err := s.store.Store(used); err != nil {
		return err
	}
	s.reserved = used
	return nil
}

// reserveLocked makes sure the store covers next, extending both
// reservations by reserve past the clock (or past the number, if the clock
// is behind it).
func (s *State) reserveLocked(next Seqs, now time.Time) error {
	if s.store == nil || (next.Announcement <= s.reserved.Announcement && next.Heartbeat <= s.reserved.Heartbeat) {
		return nil
	}
	ahead := uint64(s.reserve)
	clock := uint64(max(now.UnixNano(), 0))
	r := Seqs{
		Announcement: max(s.reserved.Announcement, max(next.Announcement, clock)+ahead),
		Heartbeat:    max(s.reserved.Heartbeat, max(next.Heartbeat, clock)+ahead),
	}
	if err := s.store.Store(r); err != nil {
		return fmt.Errorf("announcer: reserve sequence numbers: %w", err)
	}
	s.reserved = r
	return nil
}

// NextAnnouncement builds an announcement of the current set with a new
// seq: unix nanoseconds at creation, or one more than the last, whichever is
// larger, so that seqs increase within one nanosecond and, with Persist,
// across restarts even when the clock went back. It fails only when a
// reservation cannot be stored; then no number is used.
func (s *State) NextAnnouncement(kind pb.AnnouncementKind, addrs [][]byte, now time.Time) (*pb.Announcement, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq := nextSeq(s.annSeq, now)
	if err := s.reserveLocked(Seqs{Announcement: seq, Heartbeat: s.hbSeq}, now); err != nil {
		return nil, err
	}
	s.annSeq = seq
	a := &pb.Announcement{
		ExecutorId:      []byte(s.id),
		Seq:             s.annSeq,
		Kind:            kind,
		Addrs:           addrs,
		IssuedAtMs:      now.UnixMilli(),
		ProtocolVersion: lp.Version,
	}
	if kind != pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL {
		a.Models = s.modelsLocked()
	}
	return a, nil
}

// NextHeartbeat builds a heartbeat naming announcement annSeq, with the load
// of every model. Its seq follows the rules of NextAnnouncement's, on a
// counter of its own.
func (s *State) NextHeartbeat(annSeq uint64, now time.Time) (*pb.Heartbeat, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq := nextSeq(s.hbSeq, now)
	if err := s.reserveLocked(Seqs{Announcement: s.annSeq, Heartbeat: seq}, now); err != nil {
		return nil, err
	}
	s.hbSeq = seq
	load := &pb.Load{}
	for _, id := range sortedKeys(s.models) {
		l := s.load[id]
		load.Models = append(load.Models, &pb.ModelLoad{
			ModelId: id, Active: l.GetActive(), Queued: l.GetQueued(), Capacity: l.GetCapacity(),
		})
	}
	return &pb.Heartbeat{
		ExecutorId:      []byte(s.id),
		Seq:             s.hbSeq,
		AnnouncementSeq: annSeq,
		IssuedAtMs:      now.UnixMilli(),
		Load:            load,
	}, nil
}

func (s *State) modelsLocked() []*pb.ModelDescriptor {
	out := make([]*pb.ModelDescriptor, 0, len(s.models))
	for _, id := range sortedKeys(s.models) {
		out = append(out, proto.CloneOf(s.models[id]))
	}
	return out
}

func (s *State) bumpLocked() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func nextSeq(last uint64, now time.Time) uint64 {
	n := uint64(max(now.UnixNano(), 0))
	if n <= last {
		n = last + 1
	}
	return n
}

func sameModels(a, b map[string]*pb.ModelDescriptor) bool {
	if len(a) != len(b) {
		return false
	}
	for id, m := range a {
		if !proto.Equal(m, b[id]) {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
