package registry

import (
	"slices"
	"testing"
	"time"

	"github.com/lloom/lloom/protocol/pb"
)

func TestHealthTransitions(t *testing.T) {
	r := newTestRegistry(t) // stale after 30s, removed after 2m
	x := newExec(t)
	mustAnnounce(t, r, x.announce(t, 1, initial, desc("a"), desc("b")), at(0))

	type step struct {
		at         time.Duration
		heartbeat  uint64 // seq of a heartbeat applied first; 0 for none
		wantRecov  bool   // the heartbeat's Recovered
		wantStatus pb.ExecutorStatus
		wantEvents []EventKind
	}
	steps := []step{
		{at: 30 * time.Second, wantStatus: healthy}, // not yet *more* than 30s
		{at: 31 * time.Second, wantStatus: stale, wantEvents: []EventKind{EventStale}},
		{at: 40 * time.Second, wantStatus: stale}, // reported once
		{at: 50 * time.Second, heartbeat: 1, wantRecov: true, wantStatus: healthy},
		{at: 60 * time.Second, heartbeat: 2, wantStatus: healthy},
		{at: 91 * time.Second, wantStatus: stale, wantEvents: []EventKind{EventStale}}, // a new stale spell
		{at: 180 * time.Second, wantStatus: stale},
		// Past RemoveAfter: stale until a Sweep removes it.
		{at: 181 * time.Second, wantStatus: stale, wantEvents: []EventKind{EventRemoved}},
	}
	for _, s := range steps {
		now := at(s.at)
		if s.heartbeat != 0 {
			res := mustHeartbeat(t, r, x.heartbeat(t, s.heartbeat, 1), now)
			if res.Recovered != s.wantRecov {
				t.Fatalf("at %s: heartbeat Recovered = %v, want %v", s.at, res.Recovered, s.wantRecov)
			}
		}
		var gotStatus pb.ExecutorStatus
		if e, ok := r.Get(x.id, now); ok {
			gotStatus = e.GetStatus()
		}
		if gotStatus != s.wantStatus {
			t.Fatalf("at %s: status %v, want %v", s.at, gotStatus, s.wantStatus)
		}
		events := r.Sweep(now)
		var kinds []EventKind
		for _, ev := range events {
			kinds = append(kinds, ev.Kind)
			if ev.Peer != x.id || !slices.Equal(ev.Models, []string{"a", "b"}) {
				t.Errorf("at %s: event %+v, want peer %s with models [a b]", s.at, ev, x.id)
			}
		}
		if !slices.Equal(kinds, s.wantEvents) {
			t.Fatalf("at %s: Sweep events %v, want %v", s.at, kinds, s.wantEvents)
		}
	}
	if _, ok := r.Get(x.id, at(181*time.Second)); ok {
		t.Fatal("Get finds an executor that Sweep removed")
	}
	if r.Len() != 0 || r.Stats(at(181*time.Second)).GetExecutorsRemoved() != 1 {
		t.Fatal("removed executor still counted, or removal not counted")
	}
	if findModel(t, r, "a", &pb.QueryFilters{IncludeStale: true}, 0, 0, at(181*time.Second)).GetTotalCount() != 0 {
		t.Fatal("removed executor still found by model")
	}
}

func TestSweepEvents(t *testing.T) {
	r := newTestRegistry(t)
	xs := newExecs(t, 3)
	mustAnnounce(t, r, xs[0].announce(t, 1, initial, desc("a")), at(0))
	mustAnnounce(t, r, xs[1].announce(t, 1, initial, desc("a")), at(100*time.Second))
	mustAnnounce(t, r, xs[2].announce(t, 1, initial, desc("a")), at(125*time.Second))

	// Never swept while stale: reported removed only. Events come oldest
	// last-seen first.
	events := r.Sweep(at(140 * time.Second))
	want := []Event{
		{Peer: xs[0].id, Kind: EventRemoved, Models: []string{"a"}, LastSeen: at(0)},
		{Peer: xs[1].id, Kind: EventStale, Models: []string{"a"}, LastSeen: at(100 * time.Second)},
	}
	if !slices.EqualFunc(events, want, func(a, b Event) bool {
		return a.Peer == b.Peer && a.Kind == b.Kind && slices.Equal(a.Models, b.Models) && a.LastSeen.Equal(b.LastSeen)
	}) {
		t.Fatalf("events = %+v, want %+v", events, want)
	}
	if r.Len() != 2 {
		t.Fatalf("Len() = %d, want 2", r.Len())
	}
}

func TestAnnouncementRecovers(t *testing.T) {
	r := newTestRegistry(t)
	x := newExec(t)
	mustAnnounce(t, r, x.announce(t, 1, initial, desc("a")), at(0))
	if res := mustAnnounce(t, r, x.announce(t, 2, update, desc("a")), at(10*time.Second)); res.Recovered {
		t.Fatal("Recovered set for an executor that was not stale")
	}
	r.Sweep(at(45 * time.Second))
	if res := mustAnnounce(t, r, x.announce(t, 3, update, desc("a")), at(45*time.Second)); !res.Recovered {
		t.Fatal("Recovered not set for an announcement ending a stale spell")
	}
	if e, _ := r.Get(x.id, at(45*time.Second)); e.GetStatus() != healthy {
		t.Fatalf("status %v after recovery, want healthy", e.GetStatus())
	}
	if ev := r.Sweep(at(76 * time.Second)); len(ev) != 1 || ev[0].Kind != EventStale {
		t.Fatalf("events %v, want a new stale report after recovery", ev)
	}
}

func TestOverloaded(t *testing.T) {
	tests := []struct {
		name      string
		descCap   uint32
		l         *pb.ModelLoad // nil: no heartbeat
		wantModel pb.ExecutorStatus
	}{
		{"no heartbeat", 4, nil, healthy},
		{"below announced capacity", 4, load("a", 2, 1, 0), healthy},
		{"at announced capacity", 4, load("a", 3, 1, 0), overloaded},
		{"queued alone reaches", 4, load("a", 0, 4, 0), overloaded},
		{"heartbeat capacity wins", 4, load("a", 3, 1, 8), healthy},
		{"heartbeat capacity reached", 8, load("a", 2, 0, 2), overloaded},
		{"no capacity means 1, idle", 0, load("a", 0, 0, 0), healthy},
		{"no capacity means 1, busy", 0, load("a", 1, 0, 0), overloaded},
		{"past capacity", 2, load("a", 10, 10, 0), overloaded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRegistry(t)
			x := newExec(t)
			mustAnnounce(t, r, x.announce(t, 1, initial,
				desc("a", func(d *pb.ModelDescriptor) { d.Capacity = tt.descCap }), desc("b")), at(0))
			if tt.l != nil {
				mustHeartbeat(t, r, x.heartbeat(t, 1, 1, tt.l), at(time.Second))
			}
			now := at(2 * time.Second)
			got := findModel(t, r, "a", nil, 0, 0, now).GetExecutors().GetExecutors()
			if len(got) != 1 || got[0].GetStatus() != tt.wantModel {
				t.Fatalf("model a: %v, want status %v", got, tt.wantModel)
			}
			// b is idle: healthy however a fares.
			if got := findModel(t, r, "b", nil, 0, 0, now).GetExecutors().GetExecutors(); got[0].GetStatus() != healthy {
				t.Errorf("model b: status %v, want healthy", got[0].GetStatus())
			}
			// The executor as a whole is overloaded when one model is.
			if e, _ := r.Get(x.id, now); e.GetStatus() != tt.wantModel {
				t.Errorf("executor status %v, want %v", e.GetStatus(), tt.wantModel)
			}
		})
	}
}

func TestStats(t *testing.T) {
	r := newTestRegistry(t)
	xs := newExecs(t, 5)
	mustAnnounce(t, r, xs[0].announce(t, 1, initial, desc("a"), desc("b")), at(0))
	mustAnnounce(t, r, xs[1].announce(t, 1, initial, desc("b"), desc("c")), at(0))
	mustAnnounce(t, r, xs[2].announce(t, 1, initial, desc("c")), at(0))
	mustAnnounce(t, r, xs[3].announce(t, 1, initial, desc("d")), at(0))
	mustAnnounce(t, r, xs[4].announce(t, 1, initial, desc("e")), at(0))
	mustAnnounce(t, r, xs[4].announce(t, 2, removal), at(0))
	now := at(40 * time.Second)
	for _, x := range xs[:2] {
		mustHeartbeat(t, r, x.heartbeat(t, 1, 1), now)
	}
	mustHeartbeat(t, r, xs[1].heartbeat(t, 2, 1, load("c", 4, 0, 0)), now)

	want := &pb.Statistics{Executors: 4, Healthy: 1, Overloaded: 1, Stale: 2, Models: 4, ExecutorsRemoved: 1, MaxExecutors: 10000}
	got := r.Stats(now)
	if got.String() != want.String() {
		t.Fatalf("Stats = {%v}, want {%v}", got, want)
	}
	resp := query(t, r, &pb.QueryRequest{QueryId: 3, Query: &pb.QueryRequest_Statistics{Statistics: &pb.StatisticsQuery{}}}, now)
	if resp.GetStatistics().String() != want.String() || resp.GetErrorCode() != 0 {
		t.Fatalf("statistics query = %v, want {%v}", resp, want)
	}
}
