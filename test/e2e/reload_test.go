package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// modelsTOML is a config file with one [[models]] table per id, each with
// its input price.
func modelsTOML(prices map[string]string) string {
	var b strings.Builder
	for _, id := range []string{"m1", "m2", "m3", "m4"} {
		if p, ok := prices[id]; ok {
			fmt.Fprintf(&b, "[[models]]\nid = %q\nbackend = \"vllm\"\n[models.pricing]\ninput_token_price_wei = %q\n\n", id, p)
		}
	}
	return b.String()
}

// writeFile replaces path's content as editors do, by renaming a new file
// over it, so that the executor never reads half a file. With keepStamp,
// the new file keeps the old one's modification time.
func writeFile(t *testing.T, path, content string, keepStamp bool) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if keepStamp {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(tmp, st.ModTime(), st.ModTime()); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// showsPrices is a WaitFor condition: `client list` shows exactly the
// models of want, each with its input price.
func (h *Harness) showsPrices(v *Node, want map[string]string) func() error {
	return func() error {
		got, err := h.List(v.Addr)
		if err != nil {
			return err
		}
		have := map[string]string{}
		for _, m := range got.Models {
			if len(m.Executors) != 1 || m.Executors[0].Pricing == nil {
				return fmt.Errorf("client list: %q has %d executors, pricing %v", m.ModelID, len(m.Executors), m.Executors)
			}
			have[m.ModelID] = m.Executors[0].Pricing.InputTokenPriceWei
		}
		if fmt.Sprint(have) != fmt.Sprint(want) {
			return fmt.Errorf("client list shows models with input prices %v, want %v", have, want)
		}
		return nil
	}
}

// TestConfigReload edits an executor's --config file while it runs: the
// change reaches `client list` when the file changes and on SIGHUP, and a
// broken file is reported while the executor keeps serving what it had.
func TestConfigReload(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	v := h.StartValidator("validator")
	cfg := filepath.Join(h.dir, "executor.toml")
	writeFile(t, cfg, modelsTOML(map[string]string{"m1": "100", "m2": "100"}), false)
	e := h.StartExecutor("executor", "--validator", v.Addr, "--config", cfg)
	WaitFor(t, Timeout, h.showsPrices(v, map[string]string{"m1": "100", "m2": "100"}))

	// Add a model, change a price, remove a model.
	writeFile(t, cfg, modelsTOML(map[string]string{"m1": "200", "m3": "300"}), false)
	WaitFor(t, Timeout, h.showsPrices(v, map[string]string{"m1": "200", "m3": "300"}))
	if len(e.FindLogs("Config reloaded", func(l LogLine) bool { return l.Str("reason") == "file changed" })) == 0 {
		t.Errorf("executor did not log \"Config reloaded\" with reason \"file changed\"")
	}

	// The same size and modification time: only SIGHUP can tell.
	writeFile(t, cfg, modelsTOML(map[string]string{"m1": "200", "m3": "400"}), true)
	e.Signal(syscall.SIGHUP)
	WaitFor(t, Timeout, h.showsPrices(v, map[string]string{"m1": "200", "m3": "400"}))
	e.WaitLog("Config reloaded", func(l LogLine) bool { return l.Str("reason") == "SIGHUP" })

	// Broken files: each is reported, naming what is wrong; the models stay.
	errorsLogged := func() []LogLine {
		return e.FindLogs("Config not reloaded; keeping the current models", func(l LogLine) bool { return l.Str("level") == "error" })
	}
	for i, bad := range []struct{ content, want string }{
		{"[[models]]\nid = \"m1\"\n[[models]\nid = \"m3\"\n", "line 3"},
		{modelsTOML(map[string]string{"m1": "200"}) + "[[models]]\nid = \"has space\"\n", "has space"},
		{"[executor]\nheartbeat = \"1s\"\n", "heartbeat"},
	} {
		writeFile(t, cfg, bad.content, false)
		var logged LogLine
		WaitFor(t, Timeout, func() error {
			if ls := errorsLogged(); len(ls) > i {
				logged = ls[i]
				return nil
			}
			return fmt.Errorf("executor has not logged an error about config %d:\n%s", i+1, bad.content)
		})
		if !strings.Contains(logged.Str("error"), bad.want) {
			t.Errorf("error logged for a broken config: %q; want it to mention %q", logged.Str("error"), bad.want)
		}
	}
	if !e.Running() {
		t.Fatalf("executor exited on a broken config")
	}
	// Still heartbeating and announcing the last good models, well past
	// when it would have gone stale had it stopped: the validator counts
	// its heartbeats.
	before, err := h.Stats(v.Addr)
	if err != nil {
		t.Fatal(err)
	}
	WaitFor(t, Timeout, func() error {
		st, err := h.Stats(v.Addr)
		if err != nil {
			return err
		}
		if st.HeartbeatsAccepted < before.HeartbeatsAccepted+3 {
			return fmt.Errorf("heartbeats_accepted %d, want ≥ %d", st.HeartbeatsAccepted, before.HeartbeatsAccepted+3)
		}
		return nil
	})
	if err := h.showsPrices(v, map[string]string{"m1": "200", "m3": "400"})(); err != nil {
		t.Errorf("after broken configs: %v", err)
	}

	// A good file again is picked up.
	writeFile(t, cfg, modelsTOML(map[string]string{"m4": "1"}), false)
	WaitFor(t, Timeout, h.showsPrices(v, map[string]string{"m4": "1"}))
	if n := len(errorsLogged()); n != 3 {
		t.Errorf("executor logged %d config errors, want 3 (one per broken file)", n)
	}
}

// TestSIGHUPWithoutConfig: SIGHUP asks an executor to reload its config;
// one without --config says there is nothing to reload and carries on,
// rather than dying without a REMOVAL.
func TestSIGHUPWithoutConfig(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	v := h.StartValidator("validator")
	e := h.StartExecutor("executor", "--validator", v.Addr, "--model", "m")
	WaitFor(t, Timeout, h.Serving(v.Addr, map[string][]string{"m": {e.PeerID}}))
	e.Signal(syscall.SIGHUP)
	e.WaitLog("SIGHUP: no --config file to reload", nil)
	if !e.Running() {
		t.Fatal("executor exited on SIGHUP")
	}
	if code := e.Stop(); code != 0 {
		t.Errorf("executor exit status %d after SIGTERM, want 0", code)
	}
	if len(e.FindLogs("Published REMOVAL", nil)) == 0 {
		t.Errorf("executor log has no \"Published REMOVAL\"")
	}
}
