package announcer

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lloom/lloom/protocol/pb"
)

func announce(t *testing.T, s *State, kind pb.AnnouncementKind, now time.Time) *pb.Announcement {
	t.Helper()
	a, err := s.NextAnnouncement(kind, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func heartbeat(t *testing.T, s *State, annSeq uint64, now time.Time) *pb.Heartbeat {
	t.Helper()
	h, err := s.NextHeartbeat(annSeq, now)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// countingStore is a SeqStore in memory that counts its writes and can be
// made to fail.
type countingStore struct {
	seqs   Seqs
	writes int
	fail   error
}

func (c *countingStore) Load() (Seqs, error) { return c.seqs, nil }
func (c *countingStore) Store(s Seqs) error {
	if c.fail != nil {
		return c.fail
	}
	c.seqs = s
	c.writes++
	return nil
}

// A restart whose clock went back an hour continues above every number the
// previous run used, whether that run stopped cleanly or crashed; and a
// clean stop lets the next run follow the clock again.
func TestSeqsSurviveClockSteps(t *testing.T) {
	const reserve = time.Minute
	t0 := time.Unix(1_800_000_000, 0)
	for _, crash := range []bool{false, true} {
		name := map[bool]string{false: "clean stop", true: "crash"}[crash]
		st := &countingStore{}
		s := New(testID)
		if err := s.Persist(st, reserve); err != nil {
			t.Fatal(err)
		}
		var lastAnn, lastHB uint64
		for i := range 30 { // 30 heartbeats 2 s apart: one minute
			now := t0.Add(time.Duration(i) * 2 * time.Second)
			if i%10 == 0 {
				lastAnn = announce(t, s, pb.AnnouncementKind_ANNOUNCEMENT_KIND_UPDATE, now).GetSeq()
			}
			lastHB = heartbeat(t, s, lastAnn, now).GetSeq()
		}
		if st.writes > 2 {
			t.Errorf("%s: %d writes for 33 numbers over a minute with a reservation of %s, want at most 2", name, st.writes, reserve)
		}
		if !crash {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
		back := t0.Add(-time.Hour)
		r := New(testID)
		if err := r.Persist(st, reserve); err != nil {
			t.Fatal(err)
		}
		a := announce(t, r, pb.AnnouncementKind_ANNOUNCEMENT_KIND_INITIAL, back)
		h := heartbeat(t, r, a.GetSeq(), back)
		if a.GetSeq() <= lastAnn || h.GetSeq() <= lastHB {
			t.Errorf("%s: after the clock went back an hour, seqs %d and %d, want above the %d and %d used before", name, a.GetSeq(), h.GetSeq(), lastAnn, lastHB)
		}
		if !crash && (a.GetSeq() != lastAnn+1 || h.GetSeq() != lastHB+1) {
			t.Errorf("%s: seqs %d and %d, want the next ones after %d and %d (a clean stop stores what was used)", name, a.GetSeq(), h.GetSeq(), lastAnn, lastHB)
		}
		// With the clock right again, numbers follow it.
		later := t0.Add(2 * time.Hour)
		if got := announce(t, r, pb.AnnouncementKind_ANNOUNCEMENT_KIND_UPDATE, later).GetSeq(); got != uint64(later.UnixNano()) {
			t.Errorf("%s: seq %d once the clock is past the stored numbers, want the clock's %d", name, got, later.UnixNano())
		}
	}
}

// A number is never used before its reservation is stored: when the store
// fails, no announcement or heartbeat is built.
func TestSeqNotUsedUnlessReserved(t *testing.T) {
	st := &countingStore{fail: errors.New("disk full")}
	s := New(testID)
	if err := s.Persist(st, time.Minute); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	if _, err := s.NextAnnouncement(pb.AnnouncementKind_ANNOUNCEMENT_KIND_INITIAL, nil, now); err == nil {
		t.Fatal("announcement built although its seq could not be reserved")
	}
	if _, err := s.NextHeartbeat(1, now); err == nil {
		t.Fatal("heartbeat built although its seq could not be reserved")
	}
	st.fail = nil
	if a := announce(t, s, pb.AnnouncementKind_ANNOUNCEMENT_KIND_INITIAL, now); a.GetSeq() != uint64(now.UnixNano()) || st.seqs.Announcement < a.GetSeq() {
		t.Errorf("seq %d with %d reserved, want the clock's %d, reserved", a.GetSeq(), st.seqs.Announcement, now.UnixNano())
	}
}

func TestSeqFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key.seq")
	f := SeqFile(path)
	if got, err := f.Load(); err != nil || got != (Seqs{}) {
		t.Fatalf("missing file: %v, %v; want zeros and no error", got, err)
	}
	want := Seqs{Announcement: 1<<63 + 5, Heartbeat: 1_800_000_000_123_456_789}
	if err := f.Store(want); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Load(); err != nil || got != want {
		t.Fatalf("read back %v, %v; want %v", got, err, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 (it sits next to the identity key)", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(path + ".tmp*"); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if err := os.WriteFile(path, []byte(`{"announcement_seq":"12x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Load(); err == nil {
		t.Error("a damaged file loads without error")
	}
	s := New(testID)
	if err := s.Persist(f, time.Minute); err == nil {
		t.Error("Persist accepts a damaged file: the executor would start without its numbers")
	}
}
