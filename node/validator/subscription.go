package validator

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lloom/lloom/pkg/registry"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// This file is what the change feed's two faces share — the
// /lloom/watch/1.0.0 stream (watch.go) and the HTTP event stream
// (http_events.go): a subscriber's view of the registry's change log, and
// the cap on subscribers.
//
// A subscriber holds a version, never a queue: it reads the registry's
// shared, bounded history at its own pace. One that falls out of the
// history (ErrBehind) is cut off, costing nothing meanwhile; when it comes
// back with its version it gets a fresh snapshot, then changes.

// Bounds of the feed.
const (
	// DefaultWatchSubscribers is Config.WatchSubscribers' default.
	DefaultWatchSubscribers = 64
	// watchPerPeer bounds the /lloom/watch/1.0.0 streams of one peer.
	watchPerPeer = 4
	// watchBatch is how many changes a subscriber reads at once.
	watchBatch = 256
	// watchWriteTimeout cuts off a subscriber that does not take what is
	// written to it.
	watchWriteTimeout = 10 * time.Second
)

// view is what one subscriber watches: every executor, or those serving
// one model; verified ones only unless unverified is set.
type view struct {
	model      string
	unverified bool
}

// kind is the event c makes in the view, if any. An executor that enters
// the view (registered, verified, or now serving the model) is ADDED there,
// one that leaves it REMOVED, whatever the registry's own kind of change.
func (v view) kind(c *registry.Change) (pb.WatchEventKind, bool) {
	after := c.Kind != registry.ChangeRemoved && v.shows(&c.Executor, c.Executor.Verified)
	before := c.Kind != registry.ChangeAdded && (v.unverified || c.WasVerified)
	if before && v.model != "" {
		served := c.Executor.Serves(v.model)
		if c.Kind != registry.ChangeRemoved {
			// The state is after the change: count back what it changed.
			served = served && !slices.Contains(c.AddedModels, v.model) || slices.Contains(c.DroppedModels, v.model)
		}
		before = served
	}
	switch {
	case !before && !after:
		return 0, false
	case !before:
		return pb.WatchEventKind_WATCH_EVENT_KIND_ADDED, true
	case !after:
		return pb.WatchEventKind_WATCH_EVENT_KIND_REMOVED, true
	}
	return kindOf[c.Kind], true
}

// shows reports whether an executor in state s, verified or not, is in
// the view.
func (v view) shows(s *registry.ExecutorState, verified bool) bool {
	return (v.unverified || verified) && (v.model == "" || s.Serves(v.model))
}

var kindOf = [...]pb.WatchEventKind{
	registry.ChangeAdded:     pb.WatchEventKind_WATCH_EVENT_KIND_ADDED,
	registry.ChangeUpdated:   pb.WatchEventKind_WATCH_EVENT_KIND_UPDATED,
	registry.ChangeLoad:      pb.WatchEventKind_WATCH_EVENT_KIND_LOAD,
	registry.ChangeStale:     pb.WatchEventKind_WATCH_EVENT_KIND_STALE,
	registry.ChangeRecovered: pb.WatchEventKind_WATCH_EVENT_KIND_RECOVERED,
	registry.ChangeRemoved:   pb.WatchEventKind_WATCH_EVENT_KIND_REMOVED,
}

// subscription reads the change log for one view.
type subscription struct {
	reg     *registry.Registry
	view    view
	version uint64 // every change up to it has been given out
	buf     []registry.Change
}

// subscribe starts a subscription after version after when the log still
// covers it (resumed), else at a snapshot of the view, which it returns.
func subscribe(reg *registry.Registry, v view, after uint64, now time.Time) (s *subscription, snapshot []registry.ExecutorState, resumed bool) {
	s = &subscription{reg: reg, view: v}
	if after != 0 {
		if _, _, err := reg.Changes(after, 0, nil); err == nil {
			s.version = after
			return s, nil, true
		}
	}
	version, states := reg.Snapshot(v.model, now)
	s.version = version
	kept := states[:0]
	for i := range states {
		if v.shows(&states[i], states[i].Verified) {
			kept = append(kept, states[i])
		}
	}
	return s, kept, false
}

// poll returns the events of the changes made since the last poll, or,
// with none, a channel closed at the next change. The error matches
// registry.ErrBehind when the subscriber fell out of the history.
func (s *subscription) poll(now time.Time) ([]*pb.WatchEvent, <-chan struct{}, error) {
	for {
		cs, wake, err := s.reg.Changes(s.version, watchBatch, s.buf[:0])
		s.buf = cs
		if err != nil || len(cs) == 0 {
			return nil, wake, err
		}
		s.version = cs[len(cs)-1].Version
		var evs []*pb.WatchEvent
		for i := range cs {
			if k, ok := s.view.kind(&cs[i]); ok {
				evs = append(evs, changeEvent(k, &cs[i]))
			}
		}
		clear(s.buf) // let go of the states until the next poll
		if len(evs) > 0 {
			return evs, nil, nil
		}
	}
}

func changeEvent(k pb.WatchEventKind, c *registry.Change) *pb.WatchEvent {
	return &pb.WatchEvent{
		Version:       c.Version,
		Kind:          k,
		AtMs:          c.At.UnixMilli(),
		Executor:      watched(&c.Executor),
		AddedModels:   c.AddedModels,
		DroppedModels: c.DroppedModels,
	}
}

// snapshotEvents are the SNAPSHOT frames of states and the SYNCED frame
// that ends them.
func snapshotEvents(version uint64, states []registry.ExecutorState, now time.Time) []*pb.WatchEvent {
	evs := make([]*pb.WatchEvent, 0, len(states)+1)
	for i := range states {
		evs = append(evs, &pb.WatchEvent{Version: version, Kind: pb.WatchEventKind_WATCH_EVENT_KIND_SNAPSHOT,
			AtMs: now.UnixMilli(), Executor: watched(&states[i])})
	}
	return append(evs, &pb.WatchEvent{Version: version, Kind: pb.WatchEventKind_WATCH_EVENT_KIND_SYNCED,
		AtMs: now.UnixMilli(), Snapshot: true})
}

func errorEvent(version uint64, err error) *pb.WatchEvent {
	msg := err.Error()
	var e *lp.Error
	if errors.As(err, &e) {
		msg = e.Reason
	}
	return &pb.WatchEvent{Version: version, Kind: pb.WatchEventKind_WATCH_EVENT_KIND_ERROR,
		ErrorCode: lp.CodeOf(err), ErrorMessage: msg}
}

// errTooSlow cuts off a subscriber that fell out of the history.
func errTooSlow(history int) error {
	return lp.Errorf(lp.ErrTimeout.Code,
		"subscriber too slow: it fell more than the %d changes the validator keeps behind; resume from the last version to get a fresh snapshot", history)
}

// watched is the wire form of s.
func watched(s *registry.ExecutorState) *pb.WatchedExecutor {
	x := &pb.WatchedExecutor{
		PeerId:          []byte(s.ID),
		Status:          s.Status,
		Verified:        s.Verified,
		LastSeenMs:      s.LastSeen.UnixMilli(),
		RegisteredAtMs:  s.Registered.UnixMilli(),
		AnnouncementSeq: s.AnnouncementSeq,
		Addrs:           s.Addrs,
		Models:          make([]*pb.WatchedModel, len(s.Models)),
	}
	for i := range s.Models {
		m := &s.Models[i]
		x.Models[i] = &pb.WatchedModel{
			ModelId:             m.ID,
			Status:              m.Status,
			Active:              m.Active,
			Queued:              m.Queued,
			Capacity:            m.Capacity,
			Available:           m.Available,
			BackendType:         m.Backend,
			MaxContextLength:    m.MaxContextLength,
			Features:            m.Features,
			InputTokenPriceWei:  m.InputPriceWei,
			OutputTokenPriceWei: m.OutputPriceWei,
		}
	}
	return x
}

// hub caps the subscribers of the feed, the stream's and the HTTP event
// stream's together, and those of one peer; it counts those cut off.
type hub struct {
	max, perPeer int

	mu    sync.Mutex
	n     int            // guarded by mu
	peers map[string]int // guarded by mu

	served atomic.Uint64                // subscribers admitted so far
	events atomic.Uint64                // events written to subscribers
	cut    [numCutReasons]atomic.Uint64 // subscribers cut off, by reason
}

// cutReason is why a subscriber was cut off.
type cutReason int

const (
	cutBehind  cutReason = iota // it fell out of the change history
	cutWriting                  // a write failed or timed out: it stopped reading or went away
	numCutReasons
)

// cutReasonNames are lloom_watch_cutoffs_total's reason labels.
var cutReasonNames = [numCutReasons]string{cutBehind: "behind", cutWriting: "write_failed"}

// cutOff counts a subscriber cut off.
func (h *hub) cutOff(r cutReason) { h.cut[r].Add(1) }

// sent counts n events written to a subscriber.
func (h *hub) sent(n int) { h.events.Add(uint64(n)) }

func newHub(max int) *hub {
	if max <= 0 {
		max = DefaultWatchSubscribers
	}
	return &hub{max: max, perPeer: watchPerPeer, peers: map[string]int{}}
}

// errTooMany refuses a subscriber past the caps.
var errTooMany = lp.Errorf(lp.ErrRateLimited.Code, "too many subscribers to this validator's change feed; try again later")

// join admits a subscriber of key ("" for one not counted per peer) and
// returns the function that lets it go.
func (h *hub) join(key string) (leave func(), err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n >= h.max || key != "" && h.peers[key] >= h.perPeer {
		return nil, errTooMany
	}
	h.n++
	if key != "" {
		h.peers[key]++
	}
	h.served.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.n--
			if key != "" {
				if h.peers[key]--; h.peers[key] <= 0 {
					delete(h.peers, key)
				}
			}
		})
	}, nil
}

// FeedStats are the change feed's figures, over /lloom/watch/1.0.0 and
// the HTTP event stream together.
type FeedStats struct {
	Subscribers int    // now
	Served      uint64 // admitted so far
	Events      uint64 // snapshot, resumption and change events written (on a stream, a snapshot is a frame per executor)
	Cut         uint64 // cut off, CutBehind of them for falling out of the history, the rest for not reading
	CutBehind   uint64
}

// Feed reports the change feed's figures.
func (v *Validator) Feed() FeedStats {
	v.feed.mu.Lock()
	n := v.feed.n
	v.feed.mu.Unlock()
	behind := v.feed.cut[cutBehind].Load()
	return FeedStats{Subscribers: n, Served: v.feed.served.Load(), Events: v.feed.events.Load(),
		Cut: behind + v.feed.cut[cutWriting].Load(), CutBehind: behind}
}
