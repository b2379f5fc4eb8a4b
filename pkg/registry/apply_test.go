package registry

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

func TestApplyAnnouncementRegisters(t *testing.T) {
	r := newTestRegistry(t)
	x := newExec(t)
	s := x.announce(t, 10, initial, desc("llama3:8b"), desc("qwen2:7b"))
	res := mustAnnounce(t, r, s, at(0))
	if !res.New || res.Removed || res.Recovered {
		t.Fatalf("result = %+v, want New only", res)
	}
	if want := []string{"llama3:8b", "qwen2:7b"}; !slices.Equal(res.Added, want) || len(res.Dropped) != 0 {
		t.Fatalf("added %v dropped %v, want added %v", res.Added, res.Dropped, want)
	}
	if r.Len() != 1 {
		t.Fatalf("Len() = %d, want 1", r.Len())
	}
	if seq, known := r.AnnouncementSeq(x.id); seq != 10 || !known {
		t.Fatalf("AnnouncementSeq = %d, %v; want 10, true", seq, known)
	}
	if seq, known := r.HeartbeatSeq(x.id); seq != 0 || !known {
		t.Fatalf("HeartbeatSeq = %d, %v; want 0, true", seq, known)
	}
	e, ok := r.Get(x.id, at(time.Second))
	if !ok {
		t.Fatal("Get: registered executor not found")
	}
	if !bytes.Equal(e.GetAnnouncementEnvelope(), s.Raw()) {
		t.Error("announcement_envelope is not the envelope as received")
	}
	if _, err := protocol.OpenAnnouncement(e.GetAnnouncementEnvelope()); err != nil {
		t.Errorf("a client cannot verify the envelope passed on: %v", err)
	}
	if len(e.GetHeartbeatEnvelope()) != 0 {
		t.Error("heartbeat_envelope set before any heartbeat")
	}
	if e.GetStatus() != healthy || e.GetAnnouncementSeq() != 10 || e.GetLastSeenMs() != t0.UnixMilli() || e.GetRegisteredAtMs() != t0.UnixMilli() {
		t.Errorf("entry = status %v seq %d last_seen %d registered %d; want healthy, 10, %d, %d",
			e.GetStatus(), e.GetAnnouncementSeq(), e.GetLastSeenMs(), e.GetRegisteredAtMs(), t0.UnixMilli(), t0.UnixMilli())
	}
	if !slices.EqualFunc(e.GetAddrs(), testAddrs, bytes.Equal) {
		t.Errorf("addrs = %x, want the announced %x", e.GetAddrs(), testAddrs)
	}
	if !bytes.Equal(e.GetPeerId(), []byte(x.id)) {
		t.Errorf("peer_id = %x, want %x", e.GetPeerId(), []byte(x.id))
	}
	if _, ok := r.Get(newExec(t).id, at(0)); ok {
		t.Error("Get found an executor never announced")
	}
}

func TestApplyAnnouncementReplacesModelSet(t *testing.T) {
	tests := []struct {
		name        string
		first       []string // nil: no first announcement
		kind        pb.AnnouncementKind
		second      []string
		wantNew     bool
		wantAdded   []string
		wantDropped []string
	}{
		{"update adds and drops", []string{"a", "b"}, update, []string{"b", "c"}, false, []string{"c"}, []string{"a"}},
		{"initial again replaces", []string{"a", "b"}, initial, []string{"c"}, false, []string{"c"}, []string{"a", "b"}},
		{"same set", []string{"a"}, update, []string{"a"}, false, nil, nil},
		{"empty set", []string{"a"}, update, nil, false, nil, []string{"a"}},
		{"update from unknown registers", nil, update, []string{"a", "b"}, true, []string{"a", "b"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRegistry(t)
			x := newExec(t)
			if tt.first != nil {
				mustAnnounce(t, r, x.announce(t, 1, initial, descs(tt.first)...), at(0))
			}
			res := mustAnnounce(t, r, x.announce(t, 2, tt.kind, descs(tt.second)...), at(time.Second))
			if res.New != tt.wantNew || !slices.Equal(res.Added, tt.wantAdded) || !slices.Equal(res.Dropped, tt.wantDropped) {
				t.Fatalf("result = %+v, want new %v added %v dropped %v", res, tt.wantNew, tt.wantAdded, tt.wantDropped)
			}
			for _, id := range []string{"a", "b", "c"} {
				got := findModel(t, r, id, nil, 0, 0, at(time.Second)).GetTotalCount()
				want := uint32(0)
				if slices.Contains(tt.second, id) {
					want = 1
				}
				if got != want {
					t.Errorf("find-model %q: total_count %d, want %d", id, got, want)
				}
			}
			if got := r.Stats(at(time.Second)).GetModels(); got != uint64(len(tt.second)) {
				t.Errorf("Stats models = %d, want %d", got, len(tt.second))
			}
		})
	}
}

func descs(ids []string) []*pb.ModelDescriptor {
	ds := make([]*pb.ModelDescriptor, len(ids))
	for i, id := range ids {
		ds[i] = desc(id)
	}
	return ds
}

func TestApplyAnnouncementReplay(t *testing.T) {
	tests := []struct {
		name string
		seq  uint64
		kind pb.AnnouncementKind
	}{
		{"equal seq", 10, update},
		{"older seq", 9, update},
		{"older initial", 1, initial},
		{"older removal", 5, removal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRegistry(t)
			x := newExec(t)
			mustAnnounce(t, r, x.announce(t, 10, initial, desc("a")), at(0))
			var models []*pb.ModelDescriptor
			if tt.kind != removal {
				models = []*pb.ModelDescriptor{desc("b")}
			}
			_, err := r.ApplyAnnouncement(x.announce(t, tt.seq, tt.kind, models...), at(time.Second))
			if !errors.Is(err, protocol.ErrReplay) {
				t.Fatalf("err = %v, want ErrReplay", err)
			}
			if seq, _ := r.AnnouncementSeq(x.id); seq != 10 {
				t.Errorf("held seq = %d after a replay, want 10", seq)
			}
			if findModel(t, r, "a", nil, 0, 0, at(time.Second)).GetTotalCount() != 1 || r.Len() != 1 {
				t.Error("a replay changed the held model set")
			}
			if e, _ := r.Get(x.id, at(time.Second)); e.GetLastSeenMs() != t0.UnixMilli() {
				t.Error("a replay counted for liveness")
			}
		})
	}
}

func TestRemovalAndTombstone(t *testing.T) {
	r := newTestRegistry(t)
	x := newExec(t)
	mustAnnounce(t, r, x.announce(t, 10, initial, desc("a"), desc("b")), at(0))
	mustHeartbeat(t, r, x.heartbeat(t, 5, 10), at(time.Second))

	res := mustAnnounce(t, r, x.announce(t, 20, removal), at(2*time.Second))
	if !res.Removed || res.New || !slices.Equal(res.Dropped, []string{"a", "b"}) {
		t.Fatalf("removal result = %+v, want Removed with dropped [a b]", res)
	}
	if r.Len() != 0 || findModel(t, r, "a", nil, 0, 0, at(2*time.Second)).GetTotalCount() != 0 {
		t.Fatal("executor still listed after its REMOVAL")
	}
	if seq, known := r.AnnouncementSeq(x.id); seq != 20 || !known {
		t.Fatalf("AnnouncementSeq after removal = %d, %v; want the tombstone's 20, true", seq, known)
	}
	if _, known := r.HeartbeatSeq(x.id); known {
		t.Error("HeartbeatSeq knows a removed executor")
	}
	for _, seq := range []uint64{15, 20} {
		if _, err := r.ApplyAnnouncement(x.announce(t, seq, initial, desc("a")), at(3*time.Second)); !errors.Is(err, protocol.ErrReplay) {
			t.Errorf("announcement seq %d after removal at 20: err = %v, want ErrReplay", seq, err)
		}
	}
	if r.Len() != 0 {
		t.Fatal("an older announcement brought a removed executor back")
	}
	// A late heartbeat of the removed announcement asks for no pull.
	if hb, err := r.ApplyHeartbeat(x.heartbeat(t, 6, 10), at(3*time.Second)); err != nil || hb.Known || hb.NeedPull {
		t.Errorf("heartbeat naming the removed announcement: %+v, %v; want unknown, no pull", hb, err)
	}

	res = mustAnnounce(t, r, x.announce(t, 30, initial, desc("c")), at(4*time.Second))
	if !res.New || r.Len() != 1 {
		t.Fatalf("newer announcement after removal: %+v, Len %d; want re-registered", res, r.Len())
	}
	if seq, _ := r.HeartbeatSeq(x.id); seq != 5 {
		t.Errorf("HeartbeatSeq after re-registration = %d, want 5 kept from before the removal", seq)
	}
	if _, err := r.ApplyHeartbeat(x.heartbeat(t, 5, 30), at(5*time.Second)); !errors.Is(err, protocol.ErrReplay) {
		t.Errorf("heartbeat from before the removal: err = %v, want ErrReplay", err)
	}
}

func TestTombstoneExpires(t *testing.T) {
	cfg := DefaultConfig()
	tests := []struct {
		name    string
		after   time.Duration // since the removal
		sweep   bool
		wantErr bool
	}{
		{"within RemoveAfter", cfg.RemoveAfter, false, true},
		{"past RemoveAfter", cfg.RemoveAfter + time.Second, false, false},
		{"past RemoveAfter and swept", cfg.RemoveAfter + time.Second, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRegistry(t)
			x := newExec(t)
			mustAnnounce(t, r, x.announce(t, 10, initial, desc("a")), at(0))
			if res := mustAnnounce(t, r, x.announce(t, 20, removal), at(0)); !res.Removed {
				t.Fatalf("removal = %+v, want the executor removed", res)
			}
			now := at(tt.after)
			if tt.sweep {
				r.Sweep(now)
				if _, known := r.AnnouncementSeq(x.id); known {
					t.Fatal("Sweep kept an expired tombstone")
				}
			}
			_, err := r.ApplyAnnouncement(x.announce(t, 15, initial, desc("a")), now)
			if gotErr := errors.Is(err, protocol.ErrReplay); gotErr != tt.wantErr {
				t.Fatalf("older announcement %s after removal: err = %v, want replay %v", tt.after, err, tt.wantErr)
			}
			wantLen := 1
			if tt.wantErr {
				wantLen = 0
			}
			if r.Len() != wantLen {
				t.Fatalf("Len() = %d, want %d", r.Len(), wantLen)
			}
		})
	}
}

func TestRegistryFull(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxExecutors = 2
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	xs := newExecs(t, 3)
	mustAnnounce(t, r, xs[0].announce(t, 1, initial, desc("a")), at(0))
	mustAnnounce(t, r, xs[1].announce(t, 1, initial, desc("a")), at(0))

	_, err = r.ApplyAnnouncement(xs[2].announce(t, 1, initial, desc("a")), at(0))
	if !errors.Is(err, protocol.ErrRegistryFull) {
		t.Fatalf("third executor: err = %v, want ErrRegistryFull", err)
	}
	if !strings.Contains(err.Error(), "limit of 2 executors") {
		t.Errorf("error %q does not name the limit of 2", err)
	}
	if protocol.CodeOf(err) != pb.ErrorCode_ERROR_CODE_REGISTRY_FULL {
		t.Errorf("code = %v, want 2001", protocol.CodeOf(err))
	}
	if r.Len() != 2 {
		t.Fatalf("Len() = %d, want 2", r.Len())
	}
	// A known executor still updates when full.
	mustAnnounce(t, r, xs[0].announce(t, 2, update, desc("b")), at(time.Second))
	// A removal frees a slot.
	mustAnnounce(t, r, xs[1].announce(t, 2, removal), at(time.Second))
	if res := mustAnnounce(t, r, xs[2].announce(t, 2, initial, desc("a")), at(time.Second)); !res.New {
		t.Fatal("a freed slot was not reused")
	}
}

// Tombstones are bounded, the oldest going first; only a verified
// executor's REMOVAL leaves one, so REMOVALs of keys never registered (or
// never verified) cannot push a victim's tombstone out.
func TestTombstonesBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxTombstones = 3
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tombs := func() int {
		r.mu.RLock()
		defer r.mu.RUnlock()
		return r.tombs.len()
	}
	xs := newExecs(t, 5)
	for i, x := range xs {
		mustAnnounce(t, r, x.announce(t, 1, initial, desc("a")), at(time.Duration(i)*time.Second))
		mustAnnounce(t, r, x.announce(t, 2, removal), at(time.Duration(i)*time.Second))
	}
	if n := tombs(); n != 3 {
		t.Fatalf("%d tombstones held, want the limit of 3", n)
	}
	for i, x := range xs {
		_, known := r.AnnouncementSeq(x.id)
		if want := i >= 2; known != want {
			t.Errorf("executor %d: tombstone held %v, want %v (the oldest go first)", i, known, want)
		}
	}

	for _, x := range newExecs(t, 10) { // never registered
		if res := mustAnnounce(t, r, x.announce(t, 1, removal), at(10*time.Second)); res.Removed {
			t.Fatalf("removal of an unknown executor = %+v, want nothing removed", res)
		}
		if _, known := r.AnnouncementSeq(x.id); known {
			t.Fatal("a REMOVAL of a key never registered left a tombstone")
		}
	}
	unverified := newExec(t)
	mustAnnounceUnverified(t, r, unverified.announce(t, 1, initial, desc("a")), at(10*time.Second))
	mustAnnounce(t, r, unverified.announce(t, 2, removal), at(10*time.Second))
	if _, known := r.AnnouncementSeq(unverified.id); known {
		t.Fatal("a REMOVAL of an unverified executor left a tombstone")
	}
	for i, x := range xs[2:] {
		if _, known := r.AnnouncementSeq(x.id); !known {
			t.Fatalf("tombstone %d pushed out by REMOVALs of strangers", i+2)
		}
	}
}

// A tombstone lasts as long as an announcement older than the REMOVAL
// could still be fresh: RemoveAfter past the later of the REMOVAL's
// arrival and its issue time.
func TestTombstoneLastsTheFreshnessWindow(t *testing.T) {
	cfg := DefaultConfig()
	r := newTestRegistry(t)
	x := newExec(t)
	mustAnnounce(t, r, x.announce(t, 10, initial, desc("a")), at(0))
	rm := x.announcement(20, removal)
	rm.IssuedAtMs = at(time.Minute).UnixMilli() // the executor's clock is a minute ahead
	raw, err := protocol.SealAnnouncement(rm, x.key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := protocol.OpenAnnouncement(raw)
	if err != nil {
		t.Fatal(err)
	}
	mustAnnounce(t, r, s, at(0))
	r.Sweep(at(cfg.RemoveAfter + 30*time.Second))
	if _, known := r.AnnouncementSeq(x.id); !known {
		t.Fatal("tombstone dropped while an older announcement issued up to its issue time is still fresh")
	}
	r.Sweep(at(cfg.RemoveAfter + time.Minute + time.Second))
	if _, known := r.AnnouncementSeq(x.id); known {
		t.Fatal("tombstone kept past the freshness window")
	}
}
