package registry

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

func TestHeartbeatFromUnknownExecutor(t *testing.T) {
	r := newTestRegistry(t)
	x := newExec(t)
	res, err := r.ApplyHeartbeat(x.heartbeat(t, 1, 10), at(0))
	if err != nil {
		t.Fatal(err)
	}
	if res.Known || !res.NeedPull || res.Recovered {
		t.Fatalf("result = %+v, want unknown and NeedPull", res)
	}
	if r.Len() != 0 {
		t.Fatal("a heartbeat alone registered an executor")
	}
	if _, known := r.HeartbeatSeq(x.id); known {
		t.Fatal("HeartbeatSeq knows an executor only heard in a heartbeat")
	}
}

func TestHeartbeatAnnouncementSeq(t *testing.T) {
	tests := []struct {
		name         string
		annSeq       uint64 // named by the heartbeat; 10 is held
		wantNeedPull bool
	}{
		{"newer announcement", 11, true},
		{"same announcement", 10, false},
		{"older announcement", 9, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRegistry(t)
			x := newExec(t)
			mustAnnounce(t, r, x.announce(t, 10, initial, desc("a")), at(0))
			hb := x.heartbeat(t, 1, tt.annSeq, load("a", 3, 1, 8))
			res := mustHeartbeat(t, r, hb, at(20*time.Second))
			if !res.Known || res.NeedPull != tt.wantNeedPull {
				t.Fatalf("result = %+v, want known, NeedPull %v", res, tt.wantNeedPull)
			}
			// Whatever announcement it names, it counts for liveness and load.
			e, _ := r.Get(x.id, at(20*time.Second))
			if e.GetLastSeenMs() != at(20*time.Second).UnixMilli() {
				t.Errorf("last_seen_ms = %d, want the heartbeat's time", e.GetLastSeenMs())
			}
			if got := e.GetLoad().GetModels(); len(got) != 1 || got[0].GetActive() != 3 || got[0].GetQueued() != 1 || got[0].GetCapacity() != 8 {
				t.Errorf("load = %v, want a: 3 active, 1 queued, capacity 8", got)
			}
			if !bytes.Equal(e.GetHeartbeatEnvelope(), hb.Raw()) {
				t.Error("heartbeat_envelope is not the latest heartbeat as received")
			}
			if seq, _ := r.AnnouncementSeq(x.id); seq != 10 {
				t.Errorf("held announcement seq = %d, want 10 kept", seq)
			}
		})
	}
}

func TestHeartbeatReplay(t *testing.T) {
	for _, seq := range []uint64{5, 4} {
		r := newTestRegistry(t)
		x := newExec(t)
		mustAnnounce(t, r, x.announce(t, 10, initial, desc("a")), at(0))
		mustHeartbeat(t, r, x.heartbeat(t, 5, 10, load("a", 1, 0, 0)), at(time.Second))
		_, err := r.ApplyHeartbeat(x.heartbeat(t, seq, 10, load("a", 4, 0, 0)), at(2*time.Second))
		if !errors.Is(err, protocol.ErrReplay) {
			t.Fatalf("heartbeat seq %d after 5: err = %v, want ErrReplay", seq, err)
		}
		e, _ := r.Get(x.id, at(2*time.Second))
		if e.GetLastSeenMs() != at(time.Second).UnixMilli() || e.GetLoad().GetModels()[0].GetActive() != 1 {
			t.Errorf("heartbeat seq %d: a replay changed liveness or load: %v", seq, e)
		}
		if got, _ := r.HeartbeatSeq(x.id); got != 5 {
			t.Errorf("HeartbeatSeq = %d, want 5", got)
		}
	}
}

// modelLoads returns the load an executor-level entry reports, by model.
func modelLoads(t *testing.T, r *Registry, x *execKey, now time.Time) map[string]*pb.ModelLoad {
	t.Helper()
	e, ok := r.Get(x.id, now)
	if !ok {
		t.Fatal("executor not registered")
	}
	m := make(map[string]*pb.ModelLoad)
	for _, l := range e.GetLoad().GetModels() {
		m[l.GetModelId()] = l
	}
	return m
}

func TestHeartbeatLoad(t *testing.T) {
	r := newTestRegistry(t)
	x := newExec(t)
	mustAnnounce(t, r, x.announce(t, 1, initial,
		desc("a"), desc("b", func(d *pb.ModelDescriptor) { d.Capacity = 0 })), at(0))

	// Models the announcement does not list are ignored.
	mustHeartbeat(t, r, x.heartbeat(t, 1, 1, load("a", 2, 1, 0), load("b", 0, 0, 3), load("zzz", 9, 9, 9)), at(time.Second))
	got := modelLoads(t, r, x, at(time.Second))
	if len(got) != 2 || got["zzz"] != nil {
		t.Fatalf("loads = %v, want a and b only", got)
	}
	// Capacity: the heartbeat's, else the descriptor's (a: 4), else 1.
	if l := got["a"]; l.GetActive() != 2 || l.GetQueued() != 1 || l.GetCapacity() != 4 {
		t.Errorf("a = %v, want 2 active, 1 queued, announced capacity 4", l)
	}
	if l := got["b"]; l.GetCapacity() != 3 {
		t.Errorf("b = %v, want the heartbeat's capacity 3", l)
	}

	// A model left out of the latest heartbeat has no load.
	mustHeartbeat(t, r, x.heartbeat(t, 2, 1, load("b", 1, 0, 0)), at(2*time.Second))
	got = modelLoads(t, r, x, at(2*time.Second))
	if l := got["a"]; l.GetActive() != 0 || l.GetQueued() != 0 {
		t.Errorf("a = %v, want no load once a heartbeat leaves it out", l)
	}
	if l := got["b"]; l.GetActive() != 1 || l.GetCapacity() != 1 {
		t.Errorf("b = %v, want 1 active, capacity 1 (neither heartbeat nor descriptor gives one)", l)
	}

	// A new announcement keeps the load of models still listed and drops
	// the others'.
	mustAnnounce(t, r, x.announce(t, 2, update, desc("b"), desc("a")), at(3*time.Second))
	got = modelLoads(t, r, x, at(3*time.Second))
	if l := got["b"]; l.GetActive() != 1 {
		t.Errorf("b = %v after an update listing it, want its load kept", l)
	}
	mustAnnounce(t, r, x.announce(t, 3, update, desc("a")), at(4*time.Second))
	mustAnnounce(t, r, x.announce(t, 4, update, desc("a"), desc("b")), at(5*time.Second))
	if l := modelLoads(t, r, x, at(5*time.Second))["b"]; l.GetActive() != 0 {
		t.Errorf("b = %v re-added after being dropped, want no load left over", l)
	}
}

func TestHeartbeatAfterRemoval(t *testing.T) {
	tests := []struct {
		name         string
		annSeq       uint64 // the REMOVAL was seq 20
		after        time.Duration
		wantNeedPull bool
	}{
		{"names the removed announcement", 10, time.Second, false},
		{"names the removal itself", 20, time.Second, false},
		{"names a newer announcement", 21, time.Second, true},
		{"tombstone expired", 10, DefaultRemoveAfter + time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRegistry(t)
			x := newExec(t)
			mustAnnounce(t, r, x.announce(t, 10, initial, desc("a")), at(0))
			mustAnnounce(t, r, x.announce(t, 20, removal), at(0))
			res, err := r.ApplyHeartbeat(x.heartbeat(t, 1, tt.annSeq), at(tt.after))
			if err != nil || res.Known || res.NeedPull != tt.wantNeedPull {
				t.Fatalf("result %+v, %v; want unknown, NeedPull %v", res, err, tt.wantNeedPull)
			}
			if r.Len() != 0 {
				t.Fatal("a heartbeat registered a removed executor")
			}
		})
	}
}
