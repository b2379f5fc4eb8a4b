package announcer

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

const testID = peer.ID("\x00\x24\x08\x01\x12\x20abcdefghijklmnopqrstuvwxyz012345")

func model(id string) *pb.ModelDescriptor {
	return &pb.ModelDescriptor{ModelId: id, BackendType: "vllm", Capacity: 2, Available: true}
}

func changed(s *State) bool {
	select {
	case <-s.Changed():
		return true
	default:
		return false
	}
}

func TestModelChangesSignal(t *testing.T) {
	s := New(testID)
	steps := []struct {
		name    string
		do      func() error
		want    []string
		changed bool
	}{
		{"set two", func() error { return s.SetModels([]*pb.ModelDescriptor{model("b"), model("a")}) }, []string{"a", "b"}, true},
		{"same set again", func() error { return s.SetModels([]*pb.ModelDescriptor{model("a"), model("b")}) }, []string{"a", "b"}, false},
		{"put new", func() error { return s.PutModel(model("c")) }, []string{"a", "b", "c"}, true},
		{"put identical", func() error { return s.PutModel(model("c")) }, []string{"a", "b", "c"}, false},
		{"put changed", func() error { m := model("c"); m.Capacity = 9; return s.PutModel(m) }, []string{"a", "b", "c"}, true},
		{"remove", func() error { return s.RemoveModel("a") }, []string{"b", "c"}, true},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		var got []string
		for _, m := range s.Models() {
			got = append(got, m.GetModelId())
		}
		if fmt.Sprint(got) != fmt.Sprint(st.want) {
			t.Errorf("%s: models %v, want %v", st.name, got, st.want)
		}
		if c := changed(s); c != st.changed {
			t.Errorf("%s: changed=%v, want %v", st.name, c, st.changed)
		}
	}
	if m, _ := s.Model("c"); m.GetCapacity() != 9 {
		t.Errorf("put changed: capacity %d, want 9", m.GetCapacity())
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	s := New(testID)
	if err := s.SetModels([]*pb.ModelDescriptor{model("keep")}); err != nil {
		t.Fatal(err)
	}
	changed(s)
	big := model("big")
	big.Metadata = map[string]string{}
	for i := range lp.MaxMetadata {
		big.Metadata[fmt.Sprintf("k%02d", i)] = strings.Repeat("v", lp.MaxMetadataValueLen)
	}
	var tooMany []*pb.ModelDescriptor
	for i := range lp.MaxModels + 1 {
		tooMany = append(tooMany, model(fmt.Sprintf("m%d", i)))
	}
	var tooBig []*pb.ModelDescriptor
	for i := range lp.MaxModels {
		m := model(fmt.Sprintf("m%d", i))
		m.Metadata = big.Metadata
		tooBig = append(tooBig, m)
	}
	for _, tc := range []struct {
		name string
		do   func() error
		want error
	}{
		{"bad id", func() error { return s.PutModel(model("has space")) }, lp.ErrMalformed},
		{"duplicate", func() error { return s.SetModels([]*pb.ModelDescriptor{model("x"), model("x")}) }, nil},
		{"too many", func() error { return s.SetModels(tooMany) }, lp.ErrModelLimitExceeded},
		{"too big in total", func() error { return s.SetModels(tooBig) }, lp.ErrMalformed},
		{"remove unknown", func() error { return s.RemoveModel("nope") }, ErrUnknownModel},
		{"load of unknown", func() error { return s.SetLoad("nope", 1, 0, 0) }, ErrUnknownModel},
	} {
		err := tc.do()
		if err == nil {
			t.Errorf("%s: no error", tc.name)
		} else if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if ms := s.Models(); len(ms) != 1 || ms[0].GetModelId() != "keep" {
			t.Errorf("%s: models changed to %d", tc.name, len(ms))
		}
		if changed(s) {
			t.Errorf("%s: signalled a change", tc.name)
		}
	}
}

func TestSequencesIncrease(t *testing.T) {
	s := New(testID)
	if err := s.SetModels([]*pb.ModelDescriptor{model("a")}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLoad("a", 2, 1, 0); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	a1 := announce(t, s, pb.AnnouncementKind_ANNOUNCEMENT_KIND_INITIAL, now)
	a2 := announce(t, s, pb.AnnouncementKind_ANNOUNCEMENT_KIND_UPDATE, now) // same instant
	a3 := announce(t, s, pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL, now.Add(-time.Hour))
	if !(a1.GetSeq() < a2.GetSeq() && a2.GetSeq() < a3.GetSeq()) {
		t.Fatalf("announcement seqs %d, %d, %d do not increase", a1.GetSeq(), a2.GetSeq(), a3.GetSeq())
	}
	if a1.GetSeq() != uint64(now.UnixNano()) {
		t.Errorf("first seq %d, want unix nanoseconds %d", a1.GetSeq(), now.UnixNano())
	}
	if len(a3.GetModels()) != 0 || len(a2.GetModels()) != 1 {
		t.Errorf("REMOVAL carries %d models, UPDATE %d; want 0 and 1", len(a3.GetModels()), len(a2.GetModels()))
	}
	if err := lp.CheckAnnouncement(a2); err != nil {
		t.Errorf("built announcement fails its own checks: %v", err)
	}
	h1 := heartbeat(t, s, a2.GetSeq(), now)
	h2 := heartbeat(t, s, a2.GetSeq(), now)
	if h1.GetSeq() >= h2.GetSeq() {
		t.Errorf("heartbeat seqs %d, %d do not increase", h1.GetSeq(), h2.GetSeq())
	}
	l := h1.GetLoad().GetModels()
	if len(l) != 1 || l[0].GetActive() != 2 || l[0].GetQueued() != 1 || h1.GetAnnouncementSeq() != a2.GetSeq() {
		t.Errorf("heartbeat load %v naming %d; want a: 2 active 1 queued naming %d", l, h1.GetAnnouncementSeq(), a2.GetSeq())
	}
	if err := lp.CheckHeartbeat(h1); err != nil {
		t.Errorf("built heartbeat fails its own checks: %v", err)
	}
}
