package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// executorA's config: two fully described models.
const executorAConfig = `
[executor]
heartbeat_interval = "300ms"

[[models]]
id = "gpt-4"
backend = "vllm"
max_context_length = 8192
features = ["chat", "completion", "tools"]
capacity = 8
architecture = "transformer"
model_size = "1.8T"
[models.pricing]
input_token_price_wei = "1500000000"
output_token_price_wei = "3000000000"
minimum_fee_wei = "100"
[models.metadata]
region = "eu-west"

[[models]]
id = "llama3.2:3b"
backend = "ollama"
max_context_length = 131072
features = ["chat", "embeddings"]
capacity = 2
[models.pricing]
input_token_price_wei = "10"
output_token_price_wei = "20"
`

// wantModel is what an executor entry must show of the model's descriptor.
type wantModel struct {
	backend  string
	context  uint32
	features []string
	capacity uint32
	pricing  *PricingOut
	metadata map[string]string
}

var (
	wantA = map[string]wantModel{
		"gpt-4": {backend: "vllm", context: 8192, features: []string{"chat", "completion", "tools"}, capacity: 8,
			pricing: &PricingOut{"1500000000", "3000000000", "100"}, metadata: map[string]string{"region": "eu-west"}},
		"llama3.2:3b": {backend: "ollama", context: 131072, features: []string{"chat", "embeddings"}, capacity: 2,
			pricing: &PricingOut{"10", "20", ""}},
	}
	// What `--model ID` announces: the defaults of a quick model, with no
	// backend type (unknown), no context length and no price.
	quickModel = wantModel{backend: "", features: []string{"chat", "completion"}, capacity: 4}
	wantB      = map[string]wantModel{"gpt-4": quickModel, "mistral-7b": quickModel}
)

// TestClientOutput runs a validator and two executors (one described by a
// config file, one by --model flags) and checks, field by field, what
// discover, list, query and stats print with --json.
func TestClientOutput(t *testing.T) {
	t.Parallel()
	h := NewHarness(t)
	v := h.StartValidator("validator")
	cfg := filepath.Join(h.dir, "executor-a.toml")
	if err := os.WriteFile(cfg, []byte(executorAConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	a := h.StartExecutor("executor-a", "--validator", v.Addr, "--config", cfg)
	b := h.StartExecutor("executor-b", "--validator", v.Addr, "--model", "gpt-4", "--model", "mistral-7b")
	wants := map[string]map[string]wantModel{a.PeerID: wantA, b.PeerID: wantB}
	nodes := map[string]*Node{a.PeerID: a, b.PeerID: b}
	WaitFor(t, Timeout, h.Serving(v.Addr, map[string][]string{
		"gpt-4":       {a.PeerID, b.PeerID},
		"llama3.2:3b": {a.PeerID},
		"mistral-7b":  {b.PeerID},
	}))

	// The validator logged each announcement it took, with its models.
	for n, models := range map[*Node][]string{a: {"gpt-4", "llama3.2:3b"}, b: {"gpt-4", "mistral-7b"}} {
		v.WaitLog("Received model announcement", func(l LogLine) bool {
			return l.Str("executor") == n.PeerID && sameSet(l.Strs("models"), models)
		})
	}

	out, err := os.ReadFile(v.StdoutPath())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "Listening on:\n") || !strings.Contains(string(out), "  "+v.Addr+"\n") {
		t.Errorf("validator stdout does not list its address %s under \"Listening on:\":\n%s", v.Addr, out)
	}

	checkEntry := func(where string, x ExecutorOut, model string) {
		t.Helper()
		want, ok := wants[x.PeerID][model]
		if !ok {
			t.Errorf("%s: executor %s should not serve %q", where, x.PeerID, model)
			return
		}
		checkExecutor(t, where, x, want, nodes[x.PeerID], v)
	}

	for _, cmd := range []string{"discover", "list"} {
		var got ModelsOut
		r, err := h.ClientJSON(nil, &got, cmd, "--validator", v.Addr)
		if err != nil {
			t.Fatal(err)
		}
		checkModelsShape(t, "client "+cmd, r.Stdout)
		if ids := got.IDs(); !sameSet(ids, []string{"gpt-4", "llama3.2:3b", "mistral-7b"}) {
			t.Errorf("client %s shows models %v, want gpt-4, llama3.2:3b, mistral-7b", cmd, ids)
		}
		for _, m := range got.Models {
			if m.ExecutorCount != len(m.Executors) {
				t.Errorf("client %s: %q has executor_count %d but lists %d executors", cmd, m.ModelID, m.ExecutorCount, len(m.Executors))
			}
			for _, x := range m.Executors {
				checkEntry(fmt.Sprintf("client %s, %q", cmd, m.ModelID), x, m.ModelID)
			}
		}
		if n := len(got.Model("gpt-4").Executors); n != 2 {
			t.Errorf("client %s: gpt-4 has %d executors, want 2", cmd, n)
		}
	}

	var q QueryOut
	r, err := h.ClientJSON(nil, &q, "query", "gpt-4", "--validator", v.Addr)
	if err != nil {
		t.Fatal(err)
	}
	checkQueryShape(t, "client query gpt-4", r.Stdout)
	if q.ModelID != "gpt-4" {
		t.Errorf("client query gpt-4: model_id %q", q.ModelID)
	}
	if !sameSet(q.Peers(), []string{a.PeerID, b.PeerID}) {
		t.Errorf("client query gpt-4 lists %v, want executors %s and %s", q.Peers(), a.PeerID, b.PeerID)
	}
	for _, x := range q.Executors {
		checkEntry("client query gpt-4", x, "gpt-4")
	}
	checkLeastLoadedFirst(t, "client query gpt-4", q.Executors)

	var st StatsOut
	r, err = h.ClientJSON(nil, &st, "stats", "--validator", v.Addr)
	if err != nil {
		t.Fatal(err)
	}
	checkStatsShape(t, r.Stdout)
	wantStats := StatsFields{Executors: 2, Healthy: 2, Models: 3}
	if got := (StatsFields{Executors: st.Executors, Healthy: st.Healthy, Overloaded: st.Overloaded, Stale: st.Stale, Models: st.Models}); got != wantStats {
		t.Errorf("client stats: executors/healthy/overloaded/stale/models = %d/%d/%d/%d/%d, want 2/2/0/0/3",
			got.Executors, got.Healthy, got.Overloaded, got.Stale, got.Models)
	}
	if st.AnnouncementsAccepted < 2 || st.HeartbeatsAccepted < 1 || st.MessagesRejected != 0 {
		t.Errorf("client stats: announcements_accepted %d (want ≥ 2), heartbeats_accepted %d (want ≥ 1), messages_rejected %d (want 0)",
			st.AnnouncementsAccepted, st.HeartbeatsAccepted, st.MessagesRejected)
	}
	if len(st.Validators) != 1 || st.Validators[0].Validator != v.Addr || st.Validators[0].Executors != 2 {
		t.Errorf("client stats: validators = %+v, want one entry for %s with 2 executors", st.Validators, v.Addr)
	}

	// People get a table naming every model.
	human := h.Run(nil, "client", "list", "--validator", v.Addr)
	if human.Code != 0 || !strings.Contains(human.Stdout, "Found 3 models served by 2 executors") {
		t.Errorf("client list without --json: %s", human)
	}
	for _, id := range []string{"gpt-4", "llama3.2:3b", "mistral-7b"} {
		if !strings.Contains(human.Stdout, id) {
			t.Errorf("client list without --json does not name %s:\n%s", id, human.Stdout)
		}
	}

	// A model nobody serves: an error, and still JSON for scripts.
	for _, asJSON := range []bool{true, false} {
		args := []string{"client", "query", "no-such-model", "--validator", v.Addr}
		if asJSON {
			args = append(args, "--json")
		}
		r := h.Run(nil, args...)
		if r.Code == 0 {
			t.Errorf("%s\nwant a non-zero exit for a model nobody serves", r)
		}
		checkOneLine(t, r, "no-such-model", "no executor serves")
		if !asJSON {
			if !strings.Contains(r.Stdout, "no executor serves it") {
				t.Errorf("%s\nwant stdout to say no executor serves it", r)
			}
			continue
		}
		var got map[string]any
		if err := decodeStrict(r.Stdout, &got); err != nil {
			t.Fatalf("%s\nstdout is not JSON: %v", r, err)
		}
		xs, ok := got["executors"].([]any)
		if got["model_id"] != "no-such-model" || !ok || len(xs) != 0 {
			t.Errorf("client query no-such-model --json printed %s, want model_id \"no-such-model\" and \"executors\": []", compact(r.Stdout))
		}
	}
}

// checkExecutor checks one executor entry against the model it serves,
// the node that runs it and the validator that was asked.
func checkExecutor(t *testing.T, where string, x ExecutorOut, want wantModel, n *Node, v *Node) {
	t.Helper()
	where += ", executor " + n.Name
	if x.PeerID != n.PeerID || !strings.HasPrefix(x.PeerID, "12D3KooW") {
		t.Errorf("%s: peer_id %q, want %q (the --identity key's)", where, x.PeerID, n.PeerID)
	}
	if x.Status != "healthy" || x.ActiveRequests != 0 || x.QueuedRequests != 0 {
		t.Errorf("%s: status %q, active %d, queued %d; want healthy, 0, 0", where, x.Status, x.ActiveRequests, x.QueuedRequests)
	}
	if x.Capacity != want.capacity {
		t.Errorf("%s: capacity %d, want %d", where, x.Capacity, want.capacity)
	}
	if seen, err := time.Parse(time.RFC3339, x.LastSeen); err != nil {
		t.Errorf("%s: last_seen %q is not RFC 3339: %v", where, x.LastSeen, err)
	} else if age := time.Since(seen); age > 10*time.Second || age < -2*time.Second {
		t.Errorf("%s: last_seen %s is %s ago; the executor heartbeats every 300ms", where, x.LastSeen, age.Round(time.Millisecond))
	}
	if len(x.Addrs) == 0 {
		t.Errorf("%s: no addrs", where)
	}
	for _, a := range x.Addrs {
		if !strings.HasPrefix(a, "/ip4/") || !slices.Contains(n.Addrs, a+"/p2p/"+n.PeerID) {
			t.Errorf("%s: addr %q is not one the executor listens on (%v)", where, a, n.Addrs)
		}
	}
	if x.BackendType != want.backend || x.MaxContextLength != want.context || !slices.Equal(x.Features, want.features) {
		t.Errorf("%s: backend_type %q, max_context_length %d, features %q; want %q, %d, %q",
			where, x.BackendType, x.MaxContextLength, x.Features, want.backend, want.context, want.features)
	}
	if !x.Verified {
		t.Errorf("%s: verified is false; the executor's own signature should check out", where)
	}
	if !x.Reached {
		t.Errorf("%s: reached is false; a live executor listed by default has passed the validator's liveness check", where)
	}
	switch {
	case want.pricing == nil && x.Pricing != nil:
		t.Errorf("%s: pricing %+v, want none", where, *x.Pricing)
	case want.pricing != nil && (x.Pricing == nil || *x.Pricing != *want.pricing):
		t.Errorf("%s: pricing %+v, want %+v", where, x.Pricing, *want.pricing)
	}
	for k, val := range want.metadata {
		if x.Metadata[k] != val {
			t.Errorf("%s: metadata %v, want %s=%s", where, x.Metadata, k, val)
		}
	}
	if !slices.Contains(x.Validators, v.Addr) {
		t.Errorf("%s: validators %v, want %s", where, x.Validators, v.Addr)
	}
}

// checkLeastLoadedFirst checks the order of a query's executors: live
// before stale, and among those by load relative to capacity.
func checkLeastLoadedFirst(t *testing.T, where string, xs []ExecutorOut) {
	t.Helper()
	rank := func(x ExecutorOut) (bool, float64) {
		load := float64(x.ActiveRequests+x.QueuedRequests) / float64(max(x.Capacity, 1))
		return x.Status == "stale", load
	}
	for i := 1; i < len(xs); i++ {
		s0, l0 := rank(xs[i-1])
		s1, l1 := rank(xs[i])
		if (s0 && !s1) || (s0 == s1 && l0 > l1) {
			t.Errorf("%s: %s (%s, load %.2f) is listed before %s (%s, load %.2f); want least loaded first, stale last",
				where, xs[i-1].PeerID, xs[i-1].Status, l0, xs[i].PeerID, xs[i].Status, l1)
		}
	}
}
