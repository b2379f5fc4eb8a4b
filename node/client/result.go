package client

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/lloom/lloom/pkg/registry"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// Executor is what the client knows of one executor serving one model,
// checked against the executor's own signature.
type Executor struct {
	PeerID   peer.ID
	Status   pb.ExecutorStatus
	Active   uint32
	Queued   uint32
	Capacity uint32
	LastSeen time.Time
	// Addrs come from the signed announcement.
	Addrs []string
	// Model is the executor's signed descriptor of the model.
	Model *pb.ModelDescriptor
	// Announcement is the executor's verified announcement.
	Announcement *pb.Announcement
	// Verified is true when the announcement's signature held (entries
	// that fail verification are not returned at all).
	Verified bool
	// Reached is true when a validator has checked that the executor is
	// live and holds its key (DESIGN §10); only queries with
	// include_unverified return executors that are not.
	Reached bool
	// Validators that reported this executor.
	Validators []string
}

// Model is one model and its executors, least loaded first.
type Model struct {
	ID        string
	Executors []*Executor
}

// ModelResult answers FindModel.
type ModelResult struct {
	ModelID   string
	Executors []*Executor
	Failures  []ValidatorError
	// Rejected lists entries dropped because their envelope did not verify.
	Rejected []string
}

// ModelsResult answers ListModelsWithExecutors: every model with its
// executors, verified.
type ModelsResult struct {
	Models   []*Model
	Failures []ValidatorError
	Rejected []string
}

// ModelSummary is one model as a validator's list counts it: executors by
// that model's status and the least loaded one's load. Nothing in it is
// signed; FindModel returns the executors with their envelopes.
type ModelSummary struct {
	ID         string
	Executors  int // healthy + overloaded + stale
	Healthy    int
	Overloaded int
	Stale      int // counted only when the filters include stale executors
	// BestActive, BestQueued and BestCapacity are the least loaded
	// executor's load and effective capacity.
	BestActive, BestQueued, BestCapacity uint32
	// Validators that listed the model. The counts are the answer of the
	// one that knows the most executors of it: without executor ids the
	// answers of several cannot be added up.
	Validators []string
}

// SummariesResult answers ListModels: models by id.
type SummariesResult struct {
	Models   []*ModelSummary
	Failures []ValidatorError
}

// ValidatorStats is one validator's statistics.
type ValidatorStats struct {
	Validator string
	Stats     *pb.Statistics
}

// StatsResult answers Stats.
type StatsResult struct {
	Validators []ValidatorStats // most executors first
	Failures   []ValidatorError
}

func sortStats(s []ValidatorStats) {
	sort.SliceStable(s, func(i, j int) bool { return s[i].Stats.GetExecutors() > s[j].Stats.GetExecutors() })
}

// merger merges validators' entries: per model and executor, the entry with
// the newest announcement wins, then the one seen most recently.
// Validators answer concurrently, so add takes the lock.
type merger struct {
	mu       sync.Mutex
	byModel  map[string]map[peer.ID]*Executor // guarded by mu
	rejected []string                         // guarded by mu
	// opened caches each executor's verified announcement: one executor
	// serving several models, or listed by several validators, costs one
	// signature check.
	opened map[peer.ID]*lp.VerifiedAnnouncement // guarded by mu
}

func newMerger() *merger {
	return &merger{byModel: map[string]map[peer.ID]*Executor{}, opened: map[peer.ID]*lp.VerifiedAnnouncement{}}
}

func (m *merger) add(model string, e *pb.ExecutorEntry, validator string) {
	x, err := verify(e, model, m.open) // the signature check runs outside the lock
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.rejected = append(m.rejected, fmt.Sprintf("validator %s: executor entry dropped: %v", validator, err))
		return
	}
	x.Validators = []string{validator}
	execs := m.byModel[model]
	if execs == nil {
		execs = map[peer.ID]*Executor{}
		m.byModel[model] = execs
	}
	old, ok := execs[x.PeerID]
	if !ok {
		execs[x.PeerID] = x
		return
	}
	vals := append(old.Validators, validator)
	reached := old.Reached || x.Reached // one validator reaching it is enough
	if c := cmp.Compare(x.Announcement.GetSeq(), old.Announcement.GetSeq()); c > 0 || c == 0 && x.LastSeen.After(old.LastSeen) {
		execs[x.PeerID] = x
	}
	execs[x.PeerID].Validators = vals
	execs[x.PeerID].Reached = reached
}

// open verifies an announcement envelope, or returns the one verified
// before from the same bytes.
func (m *merger) open(env []byte, id peer.ID) (*lp.VerifiedAnnouncement, error) {
	m.mu.Lock()
	s := m.opened[id]
	m.mu.Unlock()
	if s != nil && bytes.Equal(s.Raw(), env) {
		return s, nil
	}
	s, err := lp.OpenAnnouncement(env)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.opened[id] = s
	m.mu.Unlock()
	return s, nil
}

// rejections returns the entries dropped so far.
func (m *merger) rejections() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.rejected)
}

func (m *merger) models() []string {
	out := make([]string, 0, len(m.byModel))
	for id := range m.byModel {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func (m *merger) executors(model string) []*Executor {
	out := make([]*Executor, 0, len(m.byModel[model]))
	for _, x := range m.byModel[model] {
		out = append(out, x)
	}
	slices.SortFunc(out, compareLoad)
	return out
}

// compareLoad orders least loaded first, as validators do: stale last,
// then by utilization, load, spare capacity and peer id.
func compareLoad(a, b *Executor) int {
	as, bs := a.Status == pb.ExecutorStatus_EXECUTOR_STATUS_STALE, b.Status == pb.ExecutorStatus_EXECUTOR_STATUS_STALE
	if as != bs {
		if as {
			return 1
		}
		return -1
	}
	au, bu := uint64(a.Active)+uint64(a.Queued), uint64(b.Active)+uint64(b.Queued)
	ac, bc := uint64(max(a.Capacity, 1)), uint64(max(b.Capacity, 1))
	if c := registry.CompareProducts(au, bc, bu, ac); c != 0 {
		return c
	}
	if c := cmp.Compare(au, bu); c != 0 {
		return c
	}
	if c := cmp.Compare(bc, ac); c != 0 {
		return c
	}
	return bytes.Compare([]byte(a.PeerID), []byte(b.PeerID))
}

// verify checks an entry against the executor's signed announcement: the
// signature (by open), the signer, and that the model is one it announced.
func verify(e *pb.ExecutorEntry, model string, open func(env []byte, id peer.ID) (*lp.VerifiedAnnouncement, error)) (*Executor, error) {
	s, err := open(e.GetAnnouncementEnvelope(), peer.ID(e.GetPeerId()))
	if err != nil {
		return nil, err
	}
	if !bytes.Equal([]byte(s.Signer()), e.GetPeerId()) {
		return nil, fmt.Errorf("announcement of %s listed under peer %x", s.Signer(), e.GetPeerId())
	}
	a := s.Announcement()
	if a.GetKind() == pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL {
		return nil, fmt.Errorf("executor %s withdrew its announcement", s.Signer())
	}
	var desc *pb.ModelDescriptor
	for _, d := range a.GetModels() {
		if d.GetModelId() == model {
			desc = d
		}
	}
	if desc == nil {
		return nil, fmt.Errorf("executor %s did not announce model %q", s.Signer(), model)
	}
	x := &Executor{
		PeerID:       s.Signer(),
		Status:       e.GetStatus(),
		LastSeen:     time.UnixMilli(e.GetLastSeenMs()).UTC(),
		Model:        desc,
		Announcement: a,
		Verified:     true,
		Reached:      e.GetVerified(),
		Capacity:     desc.GetCapacity(),
	}
	for _, l := range e.GetLoad().GetModels() {
		if l.GetModelId() == model {
			x.Active, x.Queued = l.GetActive(), l.GetQueued()
			if l.GetCapacity() > 0 {
				x.Capacity = l.GetCapacity()
			}
		}
	}
	for _, b := range a.GetAddrs() {
		if addr, err := ma.NewMultiaddrBytes(b); err == nil {
			x.Addrs = append(x.Addrs, addr.String())
		}
	}
	return x, nil
}
