package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"10s", 10 * time.Second, false},
		{"500ms", 500 * time.Millisecond, false},
		{"2m", 2 * time.Minute, false},
		{"10", 10 * time.Second, false},
		{"1.5", 1500 * time.Millisecond, false},
		{" 3 ", 3 * time.Second, false},
		{"0", 0, false},
		{"", 0, true},
		{"-1", 0, true},
		{"-1s", 0, true},
		{"ten", 0, true},
		{"1e300", 0, true},
		{"NaN", 0, true},
	} {
		got, err := ParseDuration(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

const example = `
[node]
network = "testnet"
listen = ["/ip4/127.0.0.1/tcp/0"]
validators = ["127.0.0.1:8080"]

[validator]
stale_after = "5s"
remove_after = 60

[executor]
heartbeat_interval = 2.5
evm_address = "0x00000000000000000000000000000000000000aa"

[[models]]
id = "llama3.2:3b"
backend = "ollama"
max_context_length = 8192
features = ["chat"]
capacity = 2
[models.pricing]
input_token_price_wei = "1000"
output_token_price_wei = "2000"
[models.performance]
tokens_per_second = 40.5
success_rate = 0.99
[models.metadata]
endpoint = "http://127.0.0.1:11434"

[[models]]
id = "gpt-4"
available = false
`

func TestParseExample(t *testing.T) {
	f, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if f.Node.Network != "testnet" || len(f.Node.Listen) != 1 || f.Node.Validators[0] != "127.0.0.1:8080" {
		t.Errorf("node section: %+v", f.Node)
	}
	if f.StaleAfter() != 5*time.Second || f.RemoveAfter() != time.Minute || f.HeartbeatInterval() != 2500*time.Millisecond {
		t.Errorf("durations: stale %v remove %v heartbeat %v; want 5s, 1m, 2.5s", f.StaleAfter(), f.RemoveAfter(), f.HeartbeatInterval())
	}
	ds, err := f.Descriptors()
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 {
		t.Fatalf("%d descriptors, want 2", len(ds))
	}
	l := ds[0]
	if l.GetBackendType() != "ollama" || l.GetMaxContextLength() != 8192 || l.GetCapacity() != 2 || !l.GetAvailable() ||
		l.GetPricing().GetOutputTokenPriceWei() != "2000" || l.GetPerformance().GetTokensPerSecond() != 40.5 ||
		l.GetMetadata()["endpoint"] != "http://127.0.0.1:11434" {
		t.Errorf("first model: %v", l)
	}
	g := ds[1]
	if g.GetBackendType() != "" || g.GetCapacity() != DefaultCapacity || g.GetAvailable() || g.GetPricing() != nil {
		t.Errorf("second model defaults: backend %q capacity %d available %v pricing %v", g.GetBackendType(), g.GetCapacity(), g.GetAvailable(), g.GetPricing())
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"syntax", "[node\nnetwork = 1", "line 1"},
		{"unknown key", "[node]\nnetwrok = \"x\"", `unknown key "node.netwrok" (line 2)`},
		{"wrong type", "[node]\nnetwork = 5", "line 2"},
		{"bad duration", "[executor]\nheartbeat_interval = \"soon\"", "executor.heartbeat_interval"},
		{"negative duration", "[validator]\nstale_after = -3", "validator.stale_after"},
		{"bad model id", "[[models]]\nid = \"has space\"", `line 1, models[0] (id "has space")`},
		{"missing model id", "[[models]]\nbackend = \"vllm\"", "models[0]"},
		{"bad price", "[[models]]\nid = \"a\"\n[models.pricing]\ninput_token_price_wei = \"1.5\"", "input_token_price_wei"},
		{"duplicate model", "[[models]]\nid = \"a\"\n[[models]]\nid = \"a\"", "line 3, models[1] (id \"a\"): model \"a\" is listed twice"},
		// What a person wrote, in the file's terms: the key and what it
		// wants, not the Go field and type it is decoded into.
		{"price as a number", "[[models]]\nid = \"a\"\n[models.pricing]\ninput_token_price_wei = 5",
			`line 4, column 25: key models.pricing.input_token_price_wei: want a string in quotes, e.g. "1000", not an integer`},
		{"capacity as a string", "[[models]]\nid = \"a\"\ncapacity = \"4\"", "line 3, column 12: key models.capacity: want a whole number from 0 to 4294967295, not a string"},
		{"capacity too large", "[[models]]\nid = \"a\"\ncapacity = 5000000000", "key models.capacity: 5000000000 is too large: want a whole number from 0 to 4294967295"},
		{"negative capacity", "[[models]]\nid = \"a\"\ncapacity = -1", "key models.capacity: -1 is negative"},
		{"features as a string", "[[models]]\nid = \"a\"\nfeatures = \"chat\"", "key models.features: want a list of strings"},
		{"available as a number", "[[models]]\nid = \"a\"\navailable = 1", "key models.available: want true or false, not an integer"},
		// Checks the protocol makes come without its wire code.
		{"bad price text", "[[models]]\nid = \"a\"\n[models.pricing]\ninput_token_price_wei = \"abc\"",
			`line 1, models[0] (id "a"): input_token_price_wei: price "abc" is not a decimal number of wei`},
		// Capacity 0 would make the model unusable: refused, never replaced.
		{"capacity 0", "[[models]]\nid = \"a\"\n\n[[models]]\nid = \"b\"\ncapacity = 0",
			`line 4, models[1] (id "b"): capacity = 0 would take no request; want at least 1 (leave it out for the default, 4)`},
		// The announcement's evm_address check, at load.
		{"evm address", "[executor]\nevm_address = \"0x123\"", `line 2, executor.evm_address: evm_address "0x123": want 0x and 40 hex digits`},
	} {
		_, err := Parse([]byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), "(code ") || strings.Contains(err.Error(), "struct field")) {
			t.Errorf("%s: error %q speaks of wire codes or Go fields", tc.name, err)
		}
	}
}

// A capacity given is the capacity announced; one left out is the default.
func TestCapacity(t *testing.T) {
	f, err := Parse([]byte("[[models]]\nid = \"a\"\ncapacity = 1\n[[models]]\nid = \"b\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	ds, err := f.Descriptors()
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].GetCapacity() != 1 || ds[1].GetCapacity() != DefaultCapacity {
		t.Errorf("capacities %d and %d, want 1 (given) and %d (default)", ds[0].GetCapacity(), ds[1].GetCapacity(), DefaultCapacity)
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(path, []byte("[[models]]\nid = 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("error %v, want one naming %s and line 2", err, path)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestExampleConfigsLoad(t *testing.T) {
	// Every TOML file shipped in the repository must load.
	root := filepath.Join("..", "..")
	var files []string
	for _, dir := range []string{".devops", "examples", "docs"} {
		filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".toml") {
				files = append(files, p)
			}
			return nil
		})
	}
	for _, p := range files {
		if _, err := Load(p); err != nil {
			t.Errorf("%v", err)
		}
	}
}

func TestDebugLoad(t *testing.T) {
	f, err := Parse([]byte("[[models]]\nid = \"a\"\n[debug.load]\na = \"3/1\"\nb = \"2\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := f.DebugLoads()
	if err != nil {
		t.Fatal(err)
	}
	if l["a"] != (ModelLoad{3, 1}) || l["b"] != (ModelLoad{2, 0}) {
		t.Fatalf("loads %v, want a 3/1 and b 2/0", l)
	}
	for _, bad := range []string{"x", "1/x", "-1/0", "1/2/3", ""} {
		if _, err := ParseLoad(bad); err == nil {
			t.Errorf("ParseLoad(%q) accepted", bad)
		}
	}
	if _, err := Parse([]byte("[debug.load]\na = \"lots\"\n")); err == nil || !strings.Contains(err.Error(), `debug.load."a"`) {
		t.Errorf("bad debug load in a file: %v", err)
	}
}

// The listen addresses are checked where they are read, naming the key.
func TestListenKeys(t *testing.T) {
	f, err := Parse([]byte("[node]\nmetrics_listen = \"127.0.0.1:9400\"\n[validator]\nhttp_listen = \"127.0.0.1:8081\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Node.MetricsListen != "127.0.0.1:9400" || f.Validator.HTTPListen != "127.0.0.1:8081" {
		t.Errorf("read %q and %q", f.Node.MetricsListen, f.Validator.HTTPListen)
	}
	for text, want := range map[string]string{
		"[node]\nmetrics_listen = \"9400\"":            `line 2, node.metrics_listen = "9400": want HOST:PORT`,
		"[validator]\n\nhttp_listen = \"localhost\"\n": `line 3, validator.http_listen = "localhost": want HOST:PORT`,
	} {
		if _, err := Parse([]byte(text)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
}
