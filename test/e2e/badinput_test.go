package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestBadInput: each mistake gets one clear line on stderr, "lloom: …",
// naming what is wrong, and exit status 2 (bad usage or configuration) —
// never a stack trace, never a node that starts anyway.
func TestBadInput(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	dir := t.TempDir()
	file := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	syntax := file("syntax.toml", "[executor]\nheartbeat_interval = \"1s\"\n[[models]\nid = \"x\"\n", 0o600)
	unknown := file("unknown.toml", "[executor]\nheartbeat = \"1s\"\n", 0o600)
	badModel := file("badmodel.toml", "[[models]]\nid = \"gpt 4\"\n", 0o600)
	openKey := filepath.Join(dir, "open.key")
	h.Keygen(openKey)
	if err := os.Chmod(openKey, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name  string
		env   []string
		args  []string
		words []string // the message must mention each
	}{
		{"unknown flag", nil, []string{"validator", "--bogus"}, []string{"unknown flag: --bogus", "lloom validator --help"}},
		{"unknown command", nil, []string{"bogus"}, []string{`unknown command "bogus"`}},
		{"missing argument", nil, []string{"client", "query", "--validator", "127.0.0.1:1"}, []string{"1 arg", "lloom client query --help"}},
		{"port out of range", nil, []string{"validator", "--port", "70000"}, []string{"--port", "70000"}},
		{"validator address", nil, []string{"executor", "--validator", "not-an-address"}, []string{"--validator", `"not-an-address"`, "host:port"}},
		{"client validator address", nil, []string{"client", "list", "--validator", "not-an-address"}, []string{"--validator", `"not-an-address"`}},
		{"VALIDATOR_ADDRESS", []string{"VALIDATOR_ADDRESS=127.0.0.1:99999"}, []string{"executor"}, []string{"127.0.0.1:99999", "port"}},
		{"no validator", nil, []string{"client", "list"}, []string{"--validator", "VALIDATOR_ADDRESS"}},
		{"missing config", nil, []string{"executor", "--config", filepath.Join(dir, "missing.toml")}, []string{"missing.toml", "no such file"}},
		{"config syntax", nil, []string{"executor", "--config", syntax}, []string{"syntax.toml", "line 3"}},
		{"config unknown key", nil, []string{"executor", "--config", unknown}, []string{"unknown.toml", `"executor.heartbeat"`, "line 2"}},
		{"config model id", nil, []string{"executor", "--config", badModel}, []string{"badmodel.toml", `"gpt 4"`}},
		{"model id", nil, []string{"executor", "--model", "gpt 4"}, []string{"--model", `"gpt 4"`}},
		{"query model id", nil, []string{"client", "query", "gpt 4", "--validator", "127.0.0.1:1"}, []string{`"gpt 4"`}},
		{"negative interval", nil, []string{"executor", "--heartbeat-interval", "-1"}, []string{"--heartbeat-interval", `"-1"`}},
		{"zero interval", nil, []string{"executor", "--heartbeat-interval", "0"}, []string{"--heartbeat-interval", "positive"}},
		{"interval word", nil, []string{"executor", "--heartbeat-interval", "soon"}, []string{"--heartbeat-interval", `"soon"`}},
		{"stale after remove", nil, []string{"validator", "--stale-after", "2s", "--remove-after", "1s"}, []string{"--remove-after", "--stale-after"}},
		{"log level", nil, []string{"validator", "--log-level", "loud"}, []string{`"loud"`, "debug"}},
		{"LOG_LEVEL", []string{"LOG_LEVEL=loud"}, []string{"validator"}, []string{`"loud"`}},
		{"log format", nil, []string{"executor", "--log-format", "xml"}, []string{`"xml"`, "json"}},
		{"open identity", nil, []string{"executor", "--identity", openKey}, []string{openKey, "0644", "chmod 600"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := NewHarness(t).Run(c.env, c.args...)
			if r.Code != 2 {
				t.Errorf("%s\nwant exit status 2 (bad usage)", r)
			}
			checkOneLine(t, r, c.words...)
			if r.Stdout != "" {
				t.Errorf("%s\nwant nothing on stdout", r)
			}
		})
	}

	t.Run("port in use", func(t *testing.T) {
		t.Parallel()
		h := NewHarness(t)
		v := h.StartValidator("validator")
		port := strings.TrimPrefix(v.HostPort, "127.0.0.1:")
		for _, args := range [][]string{
			{"validator", "--port", port},
			{"validator", "--listen", "/ip4/127.0.0.1/tcp/" + port},
			{"executor", "--listen", "/ip4/127.0.0.1/tcp/" + port, "--validator", v.Addr, "--model", "m"},
		} {
			r := h.Run(nil, args...)
			if r.Code == 0 {
				t.Errorf("%s\nwant a non-zero exit", r)
			}
			r.Stderr = dropKnownNoise(t, r.Stderr)
			checkOneLine(t, r, "tcp/"+port, "address already in use")
		}
		if !v.Running() {
			t.Errorf("the validator that held the port is gone")
		}
	})

	// Durations: Go syntax or a bare number of seconds.
	for _, d := range []string{"1", "1s", "500ms", "1.5"} {
		t.Run("interval "+d, func(t *testing.T) {
			t.Parallel()
			n := NewHarness(t).NewNode("executor")
			n.Start("executor", "--listen", "/ip4/127.0.0.1/tcp/0", "--model", "m", "--heartbeat-interval", d)
			n.WaitLog("Executor started", nil)
			if code := n.Stop(); code != 0 {
				t.Errorf("--heartbeat-interval %s: exit status %d after SIGTERM, want 0", d, code)
			}
		})
	}
}

// libp2pListenWarning is a line that go-libp2p's swarm logs (through
// lloom's log bridge) when it cannot listen, just before lloom reports the
// same failure: two lines for one mistake. It is a known issue of package
// node (reported); until it is fixed, the line is dropped here, and the
// test logs that it did so.
var libp2pListenWarning = regexp.MustCompile(`^\S+ WRN listening failed component=libp2p `)

func dropKnownNoise(t *testing.T, stderr string) string {
	t.Helper()
	var keep []string
	for _, l := range strings.SplitAfter(stderr, "\n") {
		if libp2pListenWarning.MatchString(l) {
			t.Logf("known issue, ignored: libp2p's own warning before lloom's message: %s", strings.TrimSpace(l))
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "")
}
