//go:build faults

package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The process-level fault tests: real lloom processes killed, paused and
// restarted with signals. They take about a minute together, most of it
// waiting for timeouts, so `make test` leaves them out; `make test-faults`
// runs them:
//
//	go test -race -count=1 -tags faults -run Fault -v ./test/e2e/
//
// They run one after another, not in parallel, so that the figures they
// measure are not those of a machine busy with the other tests. Each
// scenario ends by comparing every live validator's registry with the
// ground truth (matchesTruth).

// sweepSlack is what a removal may take past --remove-after: the
// validator's health sweep runs every second.
const sweepSlack = time.Second

// TestFaultExecutorSIGKILL kills an executor at heartbeat intervals of 1s
// and 2s (validator: --stale-after 3 intervals, --remove-after 6): the
// validator reports it stale within 3 intervals + 1s of the kill and
// removes it about --remove-after after its last heartbeat (its log,
// watched every 20ms); `client query` shows it stale, listed after the live
// one, and never healthy again. A second validator, with --remove-after 1h,
// watches the same executors: the client's view of the stale executor is
// polled there with a deadline instead of having to fall between the stale
// and the removal on the first validator.
func TestFaultExecutorSIGKILL(t *testing.T) {
	for _, hb := range []time.Duration{time.Second, 2 * time.Second} {
		t.Run("heartbeat="+hb.String(), func(t *testing.T) { executorSIGKILL(t, hb) })
	}
}

func executorSIGKILL(t *testing.T, hb time.Duration) {
	h := NewHarness(t)
	staleAfter, removeAfter := 3*hb, 6*hb
	v := h.StartValidator("validator", "--stale-after", staleAfter.String(), "--remove-after", removeAfter.String())
	hold := h.StartValidator("validator-hold", "--stale-after", staleAfter.String(), "--remove-after", "1h")
	interval := []string{"--validator", v.Addr + "," + hold.Addr, "--heartbeat-interval", hb.String()}
	live := h.StartExecutor("executor-live", append(interval, "--model", "shared")...)
	dead := h.StartExecutor("executor-dead", append(interval, "--model", "shared", "--model", "dead-only")...)
	for _, val := range []*Node{v, hold} {
		WaitFor(t, Timeout, h.Serving(val.Addr, map[string][]string{"shared": {live.PeerID, dead.PeerID}, "dead-only": {dead.PeerID}}))
	}
	isDead := func(l LogLine) bool { return l.Str("executor") == dead.PeerID }
	const staleMsg, removedMsg = "Executor is stale: no heartbeat within the stale timeout", "Executor removed: no heartbeat within the removal timeout"
	staleLog := watchLog(t, v, 0, staleMsg, isDead)
	removedLog := watchLog(t, v, 0, removedMsg, isDead)

	killed := time.Now()
	if code := dead.Kill(); code != -1 {
		t.Errorf("executor exit status %d after SIGKILL, want -1 (killed)", code)
	}
	// The client's view, on the validator that keeps the killed executor.
	var seenAt time.Duration
	staleRuns := 0
	clientStale := func() error {
		q, err := h.Query(hold.Addr, "shared")
		if err != nil {
			return Fatal(fmt.Errorf("client query failed while the live executor serves the model: %w", err))
		}
		l, li := executorEntry(q, live.PeerID)
		if l == nil || l.Status != "healthy" {
			return Fatal(fmt.Errorf("client query shared: the live executor is %+v, want it healthy", l))
		}
		x, xi := executorEntry(q, dead.PeerID)
		switch {
		case x == nil:
			return Fatal(fmt.Errorf("the killed executor left client query of %s, which keeps it an hour", hold.Name))
		case x.Status != "stale" && staleRuns > 0:
			return Fatal(fmt.Errorf("the killed executor was shown stale, then %s", x.Status))
		case x.Status != "stale":
			return errNotYet
		case xi < li:
			return Fatal(fmt.Errorf("client query lists the stale executor before the live one: %v", q.Peers()))
		}
		if staleRuns == 0 {
			seenAt = time.Since(killed) // the answer is at most this old
		}
		staleRuns++
		return nil
	}
	PollClient(t, staleAfter+Timeout, clientStale)
	for range 3 { // and it stays so
		PollClient(t, Timeout, clientStale)
	}

	// The validator's own view: stale, then removed, each logged once.
	WaitFor(t, removeAfter+Timeout, func() error {
		if _, ok := removedLog.At(); !ok {
			return errNotYet
		}
		return nil
	})
	staleT, ok := staleLog.At()
	if !ok {
		t.Fatalf("%s removed the killed executor without reporting it stale first", v.Name)
	}
	removedT, _ := removedLog.At()
	staleAt, goneAt := staleT.Sub(killed), removedT.Sub(killed)
	// Health is swept every second: a log line comes up to sweepSlack after
	// the state changed, plus 20ms of watching.
	name := "executor_sigkill_hb" + hb.String()
	// The last heartbeat came up to 1.1 intervals (jitter) before the kill.
	figure(t, name+"_kill_to_stale", staleAt, staleAfter+sweepSlack+500*time.Millisecond)
	atLeast(t, name+"_kill_to_stale", staleAt, staleAfter-hb*11/10)
	figure(t, name+"_kill_to_removed", goneAt, removeAfter+sweepSlack+time.Second)
	atLeast(t, name+"_kill_to_removed", goneAt, removeAfter-hb*11/10)
	t.Logf("FIGURE %s_kill_to_client_stale=%.3f s (first client run showing it stale; no bound: it includes the client's run)", name, seenAt.Seconds())
	WaitFor(t, Timeout, func() error {
		q, err := h.Query(v.Addr, "shared")
		if err != nil {
			return err
		}
		if x, _ := executorEntry(q, dead.PeerID); x != nil {
			return Fatal(fmt.Errorf("%s logged the killed executor removed, and client query still lists it %s", v.Name, x.Status))
		}
		if l, _ := executorEntry(q, live.PeerID); l == nil || l.Status != "healthy" {
			return fmt.Errorf("client query shared: the live executor is %+v, want it healthy", l)
		}
		return nil
	})
	for _, msg := range []string{staleMsg, removedMsg} {
		if countLogs(v, msg, dead.PeerID) != 1 {
			t.Errorf("validator logged %q for the killed executor %d times, want once", msg, countLogs(v, msg, dead.PeerID))
		}
	}
	h.checkTruth([]*Node{v}, Truth{live: {"shared"}, dead: {"shared", "dead-only"}})
}

// TestFaultExecutorSIGSTOP pauses an executor with SIGSTOP. Paused longer
// than --stale-after, it is shown stale, and healthy again soon after
// SIGCONT, without a restart. Paused for less — two thirds of the stale
// timeout, from just after the validator accepted a heartbeat — it is never
// shown stale.
func TestFaultExecutorSIGSTOP(t *testing.T) {
	const hb, staleAfter = time.Second, 3 * time.Second
	start := func(t *testing.T) (*Harness, *Node, *Node, *Node) {
		h := NewHarness(t)
		// Debug logs: every accepted heartbeat, with its seq.
		v := h.StartValidator("validator", "--stale-after", staleAfter.String(), "--remove-after", "1m", "--log-level", "debug")
		interval := []string{"--validator", v.Addr, "--heartbeat-interval", hb.String()}
		steady := h.StartExecutor("executor-steady", append(interval, "--model", "shared")...)
		paused := h.StartExecutor("executor-paused", append(interval, "--model", "shared", "--model", "paused-only")...)
		// A test that fails while the executor is stopped must still let it
		// stop cleanly.
		t.Cleanup(func() { paused.Signal(syscall.SIGCONT) })
		WaitFor(t, Timeout, h.Serving(v.Addr, map[string][]string{"shared": {steady.PeerID, paused.PeerID}, "paused-only": {paused.PeerID}}))
		return h, v, steady, paused
	}
	statusOf := func(h *Harness, v, n *Node) (string, error) {
		// Its only executor may be stale: exit 0 all the same.
		var q QueryOut
		if _, err := h.ClientJSON(nil, &q, "query", "paused-only", "--include-stale", "--validator", v.Addr); err != nil {
			return "", err
		}
		x, _ := executorEntry(q, n.PeerID)
		if x == nil {
			return "", Fatal(fmt.Errorf("client query paused-only does not list the paused executor: %v", q.Peers()))
		}
		return x.Status, nil
	}
	noRestart := func(t *testing.T, n *Node) {
		t.Helper()
		if !n.Running() {
			t.Fatalf("%s exited", n.Name)
		}
		if c := countLogs(n, "Executor started", ""); c != 1 {
			t.Errorf("%s logged \"Executor started\" %d times, want once (no restart)", n.Name, c)
		}
	}

	t.Run("longer than stale-after", func(t *testing.T) {
		h, v, steady, paused := start(t)
		pause := staleAfter + 2*time.Second
		stopped := stopAfterHeartbeat(t, v, paused)
		var staleAt time.Duration
		PollClient(t, Timeout, func() error {
			st, err := statusOf(h, v, paused)
			if err != nil {
				return err
			}
			if st == "stale" {
				staleAt = time.Since(stopped)
				return nil
			}
			return fmt.Errorf("the paused executor is %s", st)
		})
		// Still stale for the rest of the pause.
		for time.Since(stopped) < pause {
			if st, err := statusOf(h, v, paused); err != nil || st != "stale" {
				t.Fatalf("%s after SIGSTOP the paused executor is %q (%v), want stale", time.Since(stopped), st, err)
			}
		}
		resumed := time.Now()
		paused.Signal(syscall.SIGCONT)
		healthyAt := PollClient(t, Timeout, func() error {
			st, err := statusOf(h, v, paused)
			if err != nil || st == "healthy" {
				return err
			}
			return fmt.Errorf("the resumed executor is %s", st)
		})
		figure(t, "executor_sigstop_long_stop_to_stale", staleAt, staleAfter+time.Second)
		// Stopped just after a heartbeat arrived: stale a stale timeout later.
		atLeast(t, "executor_sigstop_long_stop_to_stale", staleAt, staleAfter-250*time.Millisecond)
		figure(t, "executor_sigstop_long_resume_to_healthy", healthyAt, hb+time.Second)
		noRestart(t, paused)
		v.WaitLog("Executor is healthy again", func(l LogLine) bool { return l.Str("executor") == paused.PeerID })
		gap, n := signedGap(v, paused.PeerID)
		t.Logf("FIGURE executor_sigstop_long_signed_gap=%.3f s (paused %s; %d messages accepted)", gap.Seconds(), resumed.Sub(stopped).Round(time.Millisecond), n)
		if gap < pause {
			t.Errorf("longest gap between the messages accepted %s, shorter than the pause %s: was the executor paused?", gap, pause)
		}
		h.checkTruth([]*Node{v}, Truth{steady: {"shared"}, paused: {"shared", "paused-only"}})
	})

	t.Run("shorter than stale-after", func(t *testing.T) {
		h, v, steady, paused := start(t)
		pause := staleAfter * 2 / 3
		// Stopped just after the validator accepted a heartbeat, the gap it
		// sees is the pause and little more.
		stopped := stopAfterHeartbeat(t, v, paused)
		runs := 0
		check := func() {
			t.Helper()
			st, err := statusOf(h, v, paused)
			if err != nil {
				t.Fatal(err)
			}
			if st != "healthy" {
				t.Fatalf("%s after SIGSTOP (paused for %s) the executor is %s, want healthy throughout", time.Since(stopped).Round(time.Millisecond), pause, st)
			}
			runs++
		}
		for time.Since(stopped) < pause {
			check()
		}
		resumed := time.Now()
		paused.Signal(syscall.SIGCONT)
		// A stale timeout past the resume, the last heartbeat before the
		// pause would have run out.
		for time.Since(resumed) < staleAfter {
			check()
		}
		noRestart(t, paused)
		if c := countLogs(v, "Executor is stale: no heartbeat within the stale timeout", paused.PeerID); c != 0 {
			t.Errorf("validator logged the paused executor stale %d times, want never", c)
		}
		gap, n := signedGap(v, paused.PeerID)
		t.Logf("FIGURE executor_sigstop_short_signed_gap=%.3f s (paused %s, stale after %s; %d messages accepted; %d client runs, all healthy)",
			gap.Seconds(), resumed.Sub(stopped).Round(time.Millisecond), staleAfter, n, runs)
		if gap < pause || gap >= staleAfter {
			t.Errorf("longest gap between the messages accepted %s, want between the pause (%s) and the stale timeout (%s)", gap, pause, staleAfter)
		}
		h.checkTruth([]*Node{v}, Truth{steady: {"shared"}, paused: {"shared", "paused-only"}})
	})
}

// restartWithin is how soon a validator that was down for down must know
// every live executor once it listens again. Its peers redial with a
// jittered backoff that doubles from 250ms (node/connector.go): the wait
// after a failed dial is at most twice the time since the connection
// dropped, plus the first 250ms, and never more than 15s. Then one
// heartbeat interval (plus 10% jitter) brings a heartbeat and its pull, if
// the re-announcement did not come first; a second covers the client's run.
func restartWithin(down, hb time.Duration) time.Duration {
	return min(2*down+250*time.Millisecond, 15*time.Second) + hb*11/10 + time.Second
}

// TestFaultValidatorSIGKILL kills a validator and restarts it at once with
// the same identity and port: every live executor is back in its registry
// within one heartbeat interval of reconnecting, and none is shown stale
// for a stale timeout after that.
func TestFaultValidatorSIGKILL(t *testing.T) {
	const hb, staleAfter = time.Second, 3 * time.Second
	h := NewHarness(t)
	listen := "/ip4/127.0.0.1/tcp/" + strconv.Itoa(freePort(t))
	vargs := []string{"--listen", listen, "--stale-after", staleAfter.String(), "--remove-after", "1m"}
	v := h.StartValidator("validator", vargs...)
	truth := Truth{}
	want := map[string][]string{}
	var ex []*Node
	for i, m := range []string{"a", "b", "c"} {
		n := h.StartExecutor(fmt.Sprintf("executor-%d", i+1), "--validator", v.Addr, "--heartbeat-interval", hb.String(), "--model", "shared", "--model", m)
		ex = append(ex, n)
		truth[n] = []string{"shared", m}
		want["shared"] = append(want["shared"], n.PeerID)
		want[m] = []string{n.PeerID}
	}
	WaitFor(t, Timeout, h.Serving(v.Addr, want))
	h.checkTruth([]*Node{v}, truth)

	reconnected := map[*Node]*logWatch{}
	for _, n := range ex {
		reconnected[n] = watchLog(t, n, countLogs(n, "Reconnected to validator", ""), "Reconnected to validator", nil)
	}
	id := v.PeerID
	killed := time.Now()
	if code := v.Kill(); code != -1 {
		t.Errorf("validator exit status %d after SIGKILL, want -1 (killed)", code)
	}
	v.StartValidator(vargs...)
	listening := time.Now()
	if v.PeerID != id {
		t.Fatalf("restarted validator is %s, want %s (same identity)", v.PeerID, id)
	}
	// When each executor is first listed healthy with its models.
	back := map[*Node]time.Time{}
	PollClient(t, Timeout, func() error {
		got, err := h.List(v.Addr)
		if err != nil {
			return err
		}
		now := time.Now()
		for _, n := range ex {
			if _, ok := back[n]; ok {
				continue
			}
			ok := true
			for _, m := range truth[n] {
				x := got.Model(m).Executor(n.PeerID)
				ok = ok && x != nil && x.Status == "healthy"
			}
			if ok {
				back[n] = now
			}
		}
		if len(back) < len(ex) {
			return fmt.Errorf("%d of %d executors back", len(back), len(ex))
		}
		return nil
	})
	var last time.Time
	for _, n := range ex {
		if back[n].After(last) {
			last = back[n]
		}
		at, ok := reconnected[n].At()
		if !ok {
			t.Errorf("%s is back but has not logged \"Reconnected to validator\"", n.Name)
			continue
		}
		// Registered by its re-announcement, or by its next heartbeat (up
		// to 1.1 intervals with jitter) and the pull that it sets off; the
		// client's run adds a few hundred milliseconds.
		figure(t, "validator_sigkill_"+n.Name+"_reconnect_to_registered", max(back[n].Sub(at), 0), hb*11/10+500*time.Millisecond)
		via := "?"
		if ls := v.FindLogs("Received model announcement", func(l LogLine) bool { return l.Str("executor") == n.PeerID }); len(ls) > 0 {
			via = ls[0].Str("via")
		}
		t.Logf("%s redialled %s after the validator listened again; its announcement came by %s", n.Name, at.Sub(listening).Round(time.Millisecond), via)
	}
	t.Logf("FIGURE validator_sigkill_kill_to_listening=%.3f s (process start of a race-enabled binary)", listening.Sub(killed).Seconds())
	figure(t, "validator_sigkill_listening_to_all_registered", last.Sub(listening), restartWithin(listening.Sub(killed), hb))

	// Nothing alive goes stale: heartbeats reach the restarted validator.
	for settled := time.Now(); time.Since(settled) < staleAfter+time.Second; {
		if err := h.Serving(v.Addr, want)(); err != nil {
			t.Fatalf("after the restart: %v", err)
		}
	}
	h.checkTruth([]*Node{v}, truth)
}

// TestFaultOneOfThreeValidatorsKilled runs three peered validators (the
// second and third started with --validator of the first) and executors
// that bootstrap from all three (VALIDATOR_ADDRESS with three addresses).
// With the first killed, a client given all three still gets complete
// answers, exit status 0, and only a warning line naming the dead
// validator on stderr; restarted, the first catches up.
func TestFaultOneOfThreeValidatorsKilled(t *testing.T) {
	const hb, staleAfter = time.Second, 3 * time.Second
	h := NewHarness(t)
	health := []string{"--stale-after", staleAfter.String(), "--remove-after", "1m"}
	v1args := append([]string{"--listen", "/ip4/127.0.0.1/tcp/" + strconv.Itoa(freePort(t))}, health...)
	v1 := h.StartValidator("validator-1", v1args...)
	v2 := h.StartValidator("validator-2", append([]string{"--validator", v1.Addr}, health...)...)
	v3 := h.StartValidator("validator-3", append([]string{"--validator", v1.Addr}, health...)...)
	vs := []*Node{v1, v2, v3}
	all := v1.Addr + "," + v2.Addr + "," + v3.Addr

	truth := Truth{}
	want := map[string][]string{}
	for i, m := range []string{"a", "b", "c"} {
		n := h.NewNode(fmt.Sprintf("executor-%d", i+1))
		n.Env = []string{"VALIDATOR_ADDRESS=" + all}
		n.StartExecutor("--heartbeat-interval", hb.String(), "--model", "shared", "--model", m)
		truth[n] = []string{"shared", m}
		want["shared"] = append(want["shared"], n.PeerID)
		want[m] = []string{n.PeerID}
	}
	for _, v := range vs {
		WaitFor(t, Timeout, h.Serving(v.Addr, want))
	}
	h.checkTruth(vs, truth)
	start := time.Now()
	if err := h.Serving(all, want)(); err != nil {
		t.Fatal(err)
	}
	t.Logf("FIGURE client_list_three_validators_up=%.3f s", time.Since(start).Seconds())

	id := v1.PeerID
	if code := v1.Kill(); code != -1 {
		t.Errorf("validator-1 exit status %d after SIGKILL, want -1 (killed)", code)
	}
	killed := time.Now()
	// For longer than the stale timeout, so that the executors must keep
	// reaching the two others.
	var slowest time.Duration
	runs := 0
	for time.Since(killed) < staleAfter+time.Second || runs < 3 {
		for _, args := range [][]string{{"list"}, {"discover"}, {"query", "shared"}} {
			start := time.Now()
			r := h.Run(nil, append(append([]string{"client"}, args...), "--json", "--validator", all)...)
			slowest = max(slowest, time.Since(start))
			runs++
			if r.Code != 0 {
				t.Fatalf("%s\nwant exit status 0 with one validator of three down", r)
			}
			checkDeadValidatorWarning(t, r, v1.Addr)
			var complete error
			if args[0] == "query" {
				var q QueryOut
				if complete = decodeStrict(r.Stdout, &q); complete == nil && !sameSet(q.Peers(), want["shared"]) {
					complete = fmt.Errorf("executors %v, want %v", q.Peers(), want["shared"])
				}
				for _, x := range q.Executors {
					if x.Status != "healthy" {
						complete = fmt.Errorf("executor %s is %s", x.PeerID, x.Status)
					}
				}
			} else {
				var got ModelsOut
				if complete = decodeStrict(r.Stdout, &got); complete == nil {
					complete = servesExactly(got, want)
				}
			}
			if complete != nil {
				t.Fatalf("%s\nincomplete answer with one validator of three down: %v", r, complete)
			}
		}
	}
	t.Logf("FIGURE client_slowest_run_one_of_three_down=%.3f s (%d runs, each complete, exit 0)", slowest.Seconds(), runs)
	h.checkTruth([]*Node{v2, v3}, truth)

	v1.StartValidator(v1args...)
	listening := time.Now()
	t.Logf("FIGURE validator_one_of_three_down_for=%.3f s", listening.Sub(killed).Seconds())
	if v1.PeerID != id {
		t.Fatalf("restarted validator-1 is %s, want %s (same identity)", v1.PeerID, id)
	}
	PollClient(t, Timeout, h.matchesTruth(v1, truth))
	figure(t, "validator_one_of_three_listening_to_caught_up", time.Since(listening), restartWithin(listening.Sub(killed), hb))
	h.checkTruth(vs, truth)
	// All three answer again: no warning.
	if err := h.Serving(all, want)(); err != nil {
		t.Fatalf("after validator-1's restart: %v", err)
	}
}

// checkDeadValidatorWarning: with a validator down, stderr is empty or one
// line "warning: validator ADDR: …" naming it; never an error line.
func checkDeadValidatorWarning(t *testing.T, r Result, addr string) {
	t.Helper()
	s := strings.TrimRight(r.Stderr, "\n")
	if s == "" {
		return
	}
	lines := strings.Split(s, "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "warning: ") || !strings.Contains(lines[0], addr) {
		t.Errorf("%s\nwant stderr empty or one \"warning: \" line naming %s", r, addr)
	}
}

// servesExactly is serves, with no model beyond want's.
func servesExactly(got ModelsOut, want map[string][]string) error {
	if len(got.Models) != len(want) {
		return fmt.Errorf("models %v, want %d", got.IDs(), len(want))
	}
	return serves(got, want)
}
