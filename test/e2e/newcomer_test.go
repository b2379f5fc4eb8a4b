package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The rough edges a new user met (issue 13), each as the user meets it:
// the command typed, the line printed, the exit status and how long it
// took.

// goInternals are words of Go, protobuf or the wire that a person's
// mistake must not be explained with.
var goInternals = []string{"struct field", "proto:", "(code ", "config.Pricing", "crypto.pb"}

// TestNewcomerMistakes: each mistake gets one line naming the flag, file,
// line or key and what it wants, and exit status 2.
func TestNewcomerMistakes(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	evmFile := file("evm.toml", "[executor]\nevm_address = \"0x123\"\n")
	capacity0 := file("capacity0.toml", "[[models]]\nid = \"m\"\ncapacity = 0\n")
	priceNumber := file("price-number.toml", "[[models]]\nid = \"m\"\n[models.pricing]\ninput_token_price_wei = 5\n")
	priceWord := file("price-word.toml", "[[models]]\nid = \"m\"\n[models.pricing]\ninput_token_price_wei = \"abc\"\n")
	emptyKey := file("empty.key", "")
	h.Keygen(filepath.Join(dir, "unused.key")) // keygen works; only the empty file is wrong

	for _, c := range []struct {
		name  string
		args  []string
		words []string
	}{
		// 1: what the announcement checks is checked at start, from a
		// flag or from the file, in the announcement check's words.
		{"evm address flag", []string{"executor", "--model", "m", "--evm-address", "0x123", "--validator", "127.0.0.1:1"},
			[]string{"--evm-address", `evm_address "0x123": want 0x and 40 hex digits`}},
		{"evm address in the file", []string{"executor", "--config", evmFile},
			[]string{evmFile, "line 2", "executor.evm_address", `"0x123": want 0x and 40 hex digits`}},
		// 4: capacity 0 is refused, not turned into 4.
		{"capacity 0", []string{"executor", "--config", capacity0},
			[]string{capacity0, "line 1", `models[0] (id "m")`, "capacity = 0", "want at least 1"}},
		// 9: the key and what it wants, not the Go field and type.
		{"price as a number", []string{"executor", "--config", priceNumber},
			[]string{priceNumber, "line 4", "models.pricing.input_token_price_wei", "want a string in quotes"}},
		{"price not a number", []string{"executor", "--config", priceWord},
			[]string{priceWord, `input_token_price_wei: price "abc" is not a decimal number of wei`}},
		{"empty key file", []string{"validator", "--identity", emptyKey, "--listen", "/ip4/127.0.0.1/tcp/0"},
			[]string{emptyKey, "the file is empty"}},
		// 6: typos get the nearest command or flag.
		{"mistyped subcommand with its flag", []string{"client", "discver", "--validator", "127.0.0.1:1"},
			[]string{`unknown command "discver" for "lloom client"`, `did you mean "discover"?`}},
		{"mistyped command", []string{"exector", "--model", "m"},
			[]string{`unknown command "exector" for "lloom"`, `did you mean "executor"?`}},
		{"mistyped flag", []string{"executor", "--models", "m"},
			[]string{"unknown flag: --models", "did you mean --model?", "lloom executor --help"}},
		// 8: stats has no filters, so it does not take them.
		{"filter on stats", []string{"client", "stats", "--validator", "127.0.0.1:1", "--backend", "vllm"},
			[]string{"unknown flag: --backend", "lloom client stats --help"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := NewHarness(t).Run(nil, c.args...)
			if r.Code != 2 {
				t.Errorf("%s\nwant exit status 2 (bad usage)", r)
			}
			checkOneLine(t, r, c.words...)
			for _, w := range goInternals {
				if strings.Contains(r.Stderr, w) {
					t.Errorf("%s\nthe message speaks of %q", r, w)
				}
			}
		})
	}

	// 8: help lists only the flags a command uses.
	r := h.Run(nil, "client", "stats", "--help")
	for _, f := range []string{"--backend", "--min-context", "--feature", "--max-input-price", "--max-output-price", "--include-unavailable", "--include-unverified"} {
		if strings.Contains(r.Stdout, f) {
			t.Errorf("`lloom client stats --help` lists %s, which stats ignores:\n%s", f, r.Stdout)
		}
	}
	for _, f := range []string{"--validator", "--json", "--timeout"} {
		if !strings.Contains(r.Stdout, f) {
			t.Errorf("`lloom client stats --help` does not list %s:\n%s", f, r.Stdout)
		}
	}
	if r := h.Run(nil, "client", "discover", "--help"); !strings.Contains(r.Stdout, "--backend") {
		t.Errorf("`lloom client discover --help` does not list --backend:\n%s", r.Stdout)
	}

	// 11: version speaks JSON like the other commands.
	r = h.Run(nil, "version", "--json")
	var v struct {
		Version  string `json:"version"`
		Protocol int    `json:"protocol"`
	}
	if err := decodeStrict(r.Stdout, &v); r.Code != 0 || err != nil || v.Version != testVersion || v.Protocol < 1 {
		t.Errorf("%s\nwant exit 0 and {\"version\": %q, \"protocol\": 1, …} (%v)", r, testVersion, err)
	}
}

// TestNewcomerFailsFast: a client whose every validator fails for a
// reason that waiting cannot cure says so at once, not after --timeout;
// and a peer that is not a validator is called that.
func TestNewcomerFailsFast(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	v := h.StartValidator("validator")
	e := h.StartExecutor("executor", "--validator", v.Addr, "--model", "m")
	other := h.Keygen(filepath.Join(t.TempDir(), "other.key"))
	port := strings.TrimPrefix(v.HostPort, "127.0.0.1:")
	closed := "127.0.0.1:" + strconv.Itoa(freePort(t))

	// With --timeout 20s, each must fail well within 5s: it does not wait.
	const bound = 5 * time.Second
	for _, c := range []struct {
		name, validator string
		words           []string
	}{
		{"nothing listens", closed, []string{closed, "connection refused"}},
		{"another identity", "/ip4/127.0.0.1/tcp/" + port + "/p2p/" + other, []string{"peer id mismatch", other}},
		{"an executor's address", e.Addrs[0], []string{"not a validator", "/lloom/query/1.0.0"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			r := h.Run(nil, "client", "discover", "--validator", c.validator, "--timeout", "20s")
			took := time.Since(start)
			if r.Code != 1 {
				t.Errorf("%s\nwant exit status 1", r)
			}
			checkOneLine(t, r, append([]string{"no validator answered"}, c.words...)...)
			if took > bound {
				t.Errorf("`lloom %s` took %s to fail, want within %s: the error cannot heal", strings.Join(r.Args, " "), took.Round(time.Millisecond), bound)
			}
			t.Logf("failed in %s", took.Round(time.Millisecond))
		})
	}
}

// TestNewcomerQuickStart is the README's quick start: an executor given
// only --model ids. What it did not say shows as unknown, not as made-up
// values; sequence numbers are strings in JSON; the short address form is
// trust on first use, which the client says at debug.
func TestNewcomerQuickStart(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	v := h.StartValidator("validator")
	e := h.StartExecutor("executor", "--validator", v.HostPort, "--model", "llama3.2:3b")
	WaitFor(t, Timeout, h.Serving(v.Addr, map[string][]string{"llama3.2:3b": {e.PeerID}}))

	r := h.Run(nil, "client", "discover", "--validator", v.HostPort)
	if r.Code != 0 || r.Stderr != "" || !regexp.MustCompile(`(?m)^llama3\.2:3b +1 +1 +0 +0 +- +-$`).MatchString(r.Stdout) {
		t.Errorf("%s\nwant the model's row with backend and max context unknown (-), and nothing on stderr", r)
	}
	r = h.Run(nil, "client", "query", "llama3.2:3b", "--validator", v.Addr)
	var row []string
	for _, l := range strings.Split(r.Stdout, "\n") {
		if strings.HasPrefix(l, "1 ") {
			row = strings.Fields(l)
		}
	}
	// #, PEER ID, STATUS, ACTIVE, QUEUED, CAPACITY, BACKEND, CONTEXT, PRICE, LAST SEEN (2), ADDRESS
	if r.Code != 0 || len(row) != 12 || row[1] != e.PeerID || row[6] != "-" || row[7] != "-" || row[8] != "free" {
		t.Errorf("%s\nwant one executor with BACKEND -, CONTEXT - and PRICE free; row %q", r, row)
	}
	if strings.Contains(r.Stdout, "openai") {
		t.Errorf("%s\nthe executor never said its backend is openai", r)
	}

	r = h.Run(nil, "client", "query", "llama3.2:3b", "--validator", v.Addr, "--json")
	var got struct {
		Executors []map[string]any `json:"executors"`
	}
	if err := decodeStrict(r.Stdout, &got); err != nil || len(got.Executors) != 1 {
		t.Fatalf("%s\nwant one executor as JSON (%v)", r, err)
	}
	x := got.Executors[0]
	seq, isString := x["announcement_seq"].(string)
	n, err := strconv.ParseUint(seq, 10, 64)
	if !isString || err != nil || n <= 1<<53 {
		t.Errorf("announcement_seq is %#v, want a string of digits (unix nanoseconds, beyond 2^53, which a JSON number loses)", x["announcement_seq"])
	}
	if x["backend_type"] != "" || x["max_context_length"] != 0.0 {
		t.Errorf("backend_type %#v, max_context_length %#v; want \"\" and 0: not announced", x["backend_type"], x["max_context_length"])
	}

	// The short form: the client learns the validator's id on each run
	// and keeps nothing, so it says so at debug, with the address to pin.
	r = h.Run(nil, "client", "list", "--validator", v.HostPort, "--log-level", "debug", "--json")
	if r.Code != 0 || !strings.Contains(r.Stderr, "Learned validator peer id on first contact") || !strings.Contains(r.Stderr, v.Addr) {
		t.Errorf("%s\nwant the trust-on-first-use line at debug, naming the full address %s to pin", r, v.Addr)
	}
}

// TestNewcomerAllStale: a model whose every executor is stale can be
// listed, but query says that none is live and exits 1, unless
// --include-stale.
func TestNewcomerAllStale(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	v := h.StartValidator("validator", "--stale-after", "1s", "--remove-after", "1m")
	e := h.StartExecutor("executor", "--validator", v.Addr, "--model", "gone")
	WaitFor(t, Timeout, h.Serving(v.Addr, map[string][]string{"gone": {e.PeerID}}))
	e.Kill() // no REMOVAL: it turns stale
	WaitFor(t, Timeout, func() error {
		var q QueryOut
		if _, err := h.ClientJSON(nil, &q, "query", "gone", "--include-stale", "--validator", v.Addr); err != nil {
			return err
		}
		if len(q.Executors) != 1 || q.Executors[0].Status != "stale" {
			return errors.New("the killed executor is not listed stale yet: " + strings.Join(q.Peers(), ","))
		}
		return nil
	})
	r := h.Run(nil, "client", "query", "gone", "--validator", v.Addr)
	if r.Code != 1 || !strings.Contains(r.Stdout, e.PeerID) || !strings.Contains(r.Stdout, "stale") {
		t.Errorf("%s\nwant the stale executor listed and exit status 1", r)
	}
	checkOneLine(t, r, `model "gone"`, "every executor serving it is stale", "--include-stale")
	if r := h.Run(nil, "client", "query", "gone", "--validator", v.Addr, "--include-stale"); r.Code != 0 {
		t.Errorf("%s\nwant exit 0 with --include-stale", r)
	}
}

// TestNewcomerNoKeyAfterFailedStart: a node that cannot start (its port is
// taken) leaves no identity behind; one that starts writes it.
func TestNewcomerNoKeyAfterFailedStart(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	v := h.StartValidator("validator")
	if _, err := os.Stat(filepath.Join(v.Dir, "validator.key")); err != nil {
		t.Errorf("a validator that runs has not written its new identity: %v", err)
	}
	busy := "/ip4/127.0.0.1/tcp/" + strings.TrimPrefix(v.HostPort, "127.0.0.1:")
	dir := t.TempDir()
	for role, extra := range map[string][]string{"validator": nil, "executor": {"--model", "m"}} {
		key := filepath.Join(dir, role+".key")
		r := h.Run(nil, append([]string{role, "--listen", busy, "--identity", key}, extra...)...)
		if r.Code == 0 {
			t.Errorf("%s\nwant a non-zero exit: the port is taken", r)
		}
		for _, f := range []string{key, key + ".seq"} {
			if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s\nleft %s behind (%v); a start that fails must not create an identity", r, f, err)
			}
		}
	}
}

// TestNewcomerOtherNetwork: an executor of another --network, connected to
// a validator, says which network the validator serves instead of waiting
// in silence.
func TestNewcomerOtherNetwork(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	v := h.StartValidator("validator")
	e := h.StartExecutor("executor", "--validator", v.Addr, "--model", "m", "--network", "elsewhere")
	l := e.WaitLog("Connected to a validator of another network: nothing is announced to it; give both the same --network (LLOOM_NETWORK)", nil)
	if l.Str("validator") != v.PeerID || !strings.Contains(l.Str("reason"), `serves network "lloom", not "elsewhere"`) {
		b, _ := json.Marshal(l)
		t.Errorf("the warning names validator %q, reason %q; want %s and `serves network \"lloom\", not \"elsewhere\"`: %s",
			l.Str("validator"), l.Str("reason"), v.PeerID, b)
	}
}
