//go:build faults

package e2e

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The fault tests measure what they check and log each figure as
//
//	FIGURE name=value unit (bound …)
//
// so that `go test -v -tags faults … | grep FIGURE` collects them for
// docs/RELIABILITY.md.

// figure logs a measured duration and fails the test if it passes bound.
func figure(t *testing.T, name string, d, bound time.Duration) {
	t.Helper()
	t.Logf("FIGURE %s=%.3f s (bound %s)", name, d.Seconds(), bound.Round(time.Millisecond))
	if d > bound {
		t.Errorf("%s took %s, want within %s", name, d.Round(time.Millisecond), bound)
	}
}

// atLeast fails the test if d is below floor: a figure that comes too
// early shows a fault detected before it could have happened.
func atLeast(t *testing.T, name string, d, floor time.Duration) {
	t.Helper()
	if d < floor {
		t.Errorf("%s took %s, want at least %s", name, d.Round(time.Millisecond), floor)
	}
}

// PollClient is WaitFor without its pause between tries, for conditions
// that run a client each time (a tenth to a third of a second with the race
// detector): the time a fault is seen is then late by one client run, not
// by one run and WaitInterval.
func PollClient(t testing.TB, timeout time.Duration, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		var f fatalError
		if errors.As(err, &f) {
			t.Fatal(f.err)
		}
		if time.Since(start) > timeout {
			t.Fatalf("still not the case after %s: %v", timeout, err)
		}
	}
}

// errNotYet keeps a WaitFor polling.
var errNotYet = fmt.Errorf("not yet")

// announced is what an executor last signed, from its own log: the models
// and seq of its last "Published model announcement" of this run.
type announced struct {
	models []string
	seq    float64 // JSON numbers decode as float64; seqs are nanoseconds apart by far more than its precision
}

func lastAnnounced(n *Node) (announced, bool) {
	ls := n.FindLogs("Published model announcement", nil)
	if len(ls) == 0 {
		return announced{}, false
	}
	l := ls[len(ls)-1]
	seq, _ := l["seq"].(float64)
	return announced{models: l.Strs("models"), seq: seq}, true
}

// Truth is what every validator should hold at the end of a scenario: each
// live executor with the models the test gave it. Executors that are not
// running must be absent.
type Truth map[*Node][]string

// matchesTruth is a WaitFor condition: `client list --json
// --include-unavailable` asked of validator v alone (stale executors
// included) lists exactly the running executors of want — nothing lost,
// nothing extra — each verified, not stale, with exactly the models the
// test gave it, which must also be the models and seq of the announcement
// the executor last signed (its log).
func (h *Harness) matchesTruth(v *Node, want Truth) func() error {
	return func() error {
		var got ModelsOut
		if _, err := h.ClientJSON(nil, &got, "list", "--include-unavailable", "--validator", v.Addr); err != nil {
			return err
		}
		type held struct {
			models []string
			seq    uint64
			status string
		}
		have := map[string]*held{}
		for _, m := range got.Models {
			for _, x := range m.Executors {
				e := have[x.PeerID]
				if e == nil {
					e = &held{seq: x.AnnouncementSeq, status: x.Status}
					have[x.PeerID] = e
				}
				if !x.Verified {
					return Fatal(fmt.Errorf("%s: executor %s's announcement for %q does not verify", v.Name, x.PeerID, m.ModelID))
				}
				if x.AnnouncementSeq != e.seq || x.Status != e.status {
					return fmt.Errorf("%s lists executor %s at seq %d (%s) for one model, %d (%s) for another",
						v.Name, x.PeerID, x.AnnouncementSeq, x.Status, e.seq, e.status)
				}
				e.models = append(e.models, m.ModelID)
			}
		}
		var problems []string
		for n, models := range want {
			if !n.Running() {
				continue
			}
			e := have[n.PeerID]
			delete(have, n.PeerID)
			last, ok := lastAnnounced(n)
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("%s has not logged an announcement", n.Name))
			case !sameSet(last.models, models):
				return Fatal(fmt.Errorf("%s last announced %v, the test gave it %v", n.Name, last.models, models))
			case e == nil:
				problems = append(problems, fmt.Sprintf("live %s (%s) is missing", n.Name, n.PeerID))
			case !sameSet(e.models, models):
				problems = append(problems, fmt.Sprintf("%s is listed with %v, it announced %v", n.Name, e.models, models))
			case float64(e.seq) != last.seq:
				problems = append(problems, fmt.Sprintf("%s is held at seq %d, it last signed seq %.0f", n.Name, e.seq, last.seq))
			case e.status == "stale":
				problems = append(problems, fmt.Sprintf("live %s is listed stale", n.Name))
			}
		}
		for id, e := range have {
			name := id
			for n := range want {
				if n.PeerID == id {
					name = n.Name + " (not running)"
				}
			}
			problems = append(problems, fmt.Sprintf("extra executor %s with %v (%s)", name, e.models, e.status))
		}
		if len(problems) > 0 {
			slices.Sort(problems)
			return fmt.Errorf("%s's registry differs from the truth: %s", v.Name, strings.Join(problems, "; "))
		}
		return nil
	}
}

// checkTruth checks every running validator of vs against want, allowing
// a few seconds for messages in flight, and logs how long that took.
func (h *Harness) checkTruth(vs []*Node, want Truth) {
	h.t.Helper()
	live := 0
	for n := range want {
		if n.Running() {
			live++
		}
	}
	for _, v := range vs {
		if !v.Running() {
			continue
		}
		took := WaitFor(h.t, 10*time.Second, h.matchesTruth(v, want))
		h.t.Logf("%s matches the ground truth (%d live executors) after %s", v.Name, live, took.Round(time.Millisecond))
	}
}

// logWatch records when (by the test's clock) a node first logged a line
// past a given count of such lines. JSON log times have whole seconds
// only; polling the file every 20ms gives the test sub-second times.
type logWatch struct {
	mu sync.Mutex
	at time.Time // guarded by mu; zero until seen
}

// watchLog starts watching n's log for line number skip+1 (counting from
// 1) with message msg for which match (nil: any) holds; the watch stops
// when it is found or the test ends.
func watchLog(t *testing.T, n *Node, skip int, msg string, match func(LogLine) bool) *logWatch {
	w := &logWatch{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if len(n.FindLogs(msg, match)) > skip {
				w.mu.Lock()
				w.at = time.Now()
				w.mu.Unlock()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return w
}

// At returns when the line was seen, and whether it was.
func (w *logWatch) At() (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.at, !w.at.IsZero()
}

// signedGap returns the longest gap between consecutive messages from
// executor id that validator v accepted — heartbeats (its debug log
// "Heartbeat accepted") and announcements ("Received model
// announcement") — measured by the times the executor signed them (lloom's
// seqs are unix nanoseconds at signing), and how many there were.
func signedGap(v *Node, id string) (time.Duration, int) {
	var seqs []float64
	for _, l := range v.FindLogs("", func(l LogLine) bool { return l.Str("executor") == id }) {
		switch l.Message() {
		case "Heartbeat accepted", "Received model announcement":
			if s, ok := l["seq"].(float64); ok {
				seqs = append(seqs, s)
			}
		}
	}
	slices.Sort(seqs)
	var gap float64
	for i := 1; i < len(seqs); i++ {
		gap = math.Max(gap, seqs[i]-seqs[i-1])
	}
	return time.Duration(gap), len(seqs)
}

// stopAfterHeartbeat sends SIGSTOP to executor n just after validator v
// (run with --log-level debug) next logs "Heartbeat accepted" from it, and
// returns when. It waits for the validator, not for the executor's own
// "Published heartbeat": publishing only hands the message to GossipSub,
// and a process stopped right after can hold it back unsent.
func stopAfterHeartbeat(t *testing.T, v, n *Node) time.Time {
	t.Helper()
	beats := countLogs(v, "Heartbeat accepted", n.PeerID)
	deadline := time.Now().Add(Timeout)
	for countLogs(v, "Heartbeat accepted", n.PeerID) == beats {
		if time.Now().After(deadline) {
			t.Fatalf("%s accepted no heartbeat from %s within %s", v.Name, n.Name, Timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	stopped := time.Now()
	n.Signal(syscall.SIGSTOP)
	return stopped
}

// executorEntry returns the entry of peer id in a query's executors, its
// index, or nil and -1.
func executorEntry(q QueryOut, id string) (*ExecutorOut, int) {
	for i := range q.Executors {
		if q.Executors[i].PeerID == id {
			return &q.Executors[i], i
		}
	}
	return nil, -1
}

// countLogs counts n's lines (this run) with message msg from executor id
// ("": any executor).
func countLogs(n *Node, msg, id string) int {
	return len(n.FindLogs(msg, func(l LogLine) bool { return id == "" || l.Str("executor") == id }))
}
