package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// watchLine is one line of `lloom client watch --json`.
type watchLine struct {
	Kind     string `json:"kind"`
	Version  string `json:"version"`
	Snapshot bool   `json:"snapshot"`
	Executor *struct {
		PeerID string `json:"peer_id"`
	} `json:"executor"`
}

// watchLines decodes the lines a watch printed so far; a line that is not
// one JSON object fails the test at once.
func watchLines(p *clientProc) ([]watchLine, error) {
	out, _ := p.Stdout()
	var lines []watchLine
	for line := range strings.Lines(out) {
		if !strings.HasSuffix(line, "\n") {
			break // still being written
		}
		var l watchLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			return nil, Fatal(fmt.Errorf("line %q: %v", line, err))
		}
		lines = append(lines, l)
	}
	return lines, nil
}

// seen waits until the watch printed an event of kind about peer (any
// peer if ""), and returns its index among the lines.
func seen(t *testing.T, p *clientProc, kind, peer string) int {
	t.Helper()
	at := -1
	WaitFor(t, Timeout, func() error {
		lines, err := watchLines(p)
		if err != nil {
			return err
		}
		for i, l := range lines {
			if l.Kind == kind && (peer == "" || l.Executor != nil && l.Executor.PeerID == peer) {
				at = i
				return nil
			}
		}
		out, _ := p.Stdout()
		return fmt.Errorf("no %q event for %q yet in:\n%s", kind, peer, out)
	})
	return at
}

// `lloom client watch --json` follows a validator's registry as a user
// would: the snapshot (empty, then synced), an executor joining as
// "added", leaving on SIGTERM (its REMOVAL) as "removed", and Ctrl-C ends
// the watch with exit 0. Its --metrics-listen serves while it runs.
func TestClientWatchJSON(t *testing.T) {
	h := NewHarness(t)
	v := h.StartValidator("validator")
	w := h.StartClient("watch", "--json", "--validator", v.Addr, "--metrics-listen", "127.0.0.1:0")

	synced := seen(t, w, "synced", "")
	lines, _ := watchLines(w)
	if !lines[synced].Snapshot || synced != 0 {
		t.Errorf("first lines %+v: want the empty snapshot's synced line, marked snapshot", lines[:synced+1])
	}

	e := h.StartExecutor("executor", "--validator", v.Addr, "--model", "watched")
	added := seen(t, w, "added", e.PeerID)
	if code := e.Stop(); code != 0 {
		t.Errorf("executor exit %d on SIGTERM, want 0", code)
	}
	removed := seen(t, w, "removed", e.PeerID)
	if removed < added {
		t.Errorf("removed at line %d, before added at line %d", removed, added)
	}
	lines, _ = watchLines(w)
	for i, l := range lines[:synced+1] {
		if l.Executor != nil {
			t.Errorf("line %d: the snapshot of an empty registry holds %+v", i, l.Executor)
		}
	}

	if err := w.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := w.Wait(t, Timeout); code != 0 {
		t.Errorf("`lloom client watch` exit %d on SIGINT, want 0; stderr:\n%s", code, w.Stderr())
	}
	if !strings.Contains(w.Stderr(), "Metrics listening") {
		t.Errorf("--metrics-listen: no \"Metrics listening\" in stderr:\n%s", w.Stderr())
	}
}
