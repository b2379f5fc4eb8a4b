package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// The JSON that `lloom client … --json` prints, as scripts read it.

// ExecutorOut is one executor entry.
type ExecutorOut struct {
	PeerID           string            `json:"peer_id"`
	Status           string            `json:"status"`
	ActiveRequests   uint32            `json:"active_requests"`
	QueuedRequests   uint32            `json:"queued_requests"`
	Capacity         uint32            `json:"capacity"`
	LastSeen         string            `json:"last_seen"`
	Addrs            []string          `json:"addrs"`
	BackendType      string            `json:"backend_type"`
	MaxContextLength uint32            `json:"max_context_length"`
	Features         []string          `json:"features"`
	Verified         bool              `json:"verified"`
	Reached          bool              `json:"reached"`
	Available        bool              `json:"available"`
	Architecture     string            `json:"architecture"`
	ModelSize        string            `json:"model_size"`
	Pricing          *PricingOut       `json:"pricing"`
	Metadata         map[string]string `json:"metadata"`
	AnnouncementSeq  uint64            `json:"announcement_seq,string"` // a string: it exceeds 2^53
	Validators       []string          `json:"validators"`
}

// PricingOut is an executor entry's pricing.
type PricingOut struct {
	InputTokenPriceWei  string `json:"input_token_price_wei"`
	OutputTokenPriceWei string `json:"output_token_price_wei"`
	MinimumFeeWei       string `json:"minimum_fee_wei"`
}

// ModelOut is one model of discover and list.
type ModelOut struct {
	ModelID       string        `json:"model_id"`
	ExecutorCount int           `json:"executor_count"`
	Executors     []ExecutorOut `json:"executors"`
}

// ModelsOut is what discover and list print.
type ModelsOut struct {
	Models []ModelOut `json:"models"`
}

// Model returns the entry of model id, or nil.
func (m ModelsOut) Model(id string) *ModelOut {
	for i := range m.Models {
		if m.Models[i].ModelID == id {
			return &m.Models[i]
		}
	}
	return nil
}

// IDs returns the model ids, in order.
func (m ModelsOut) IDs() []string {
	var out []string
	for _, x := range m.Models {
		out = append(out, x.ModelID)
	}
	return out
}

// Executor returns the entry of peer id, or nil.
func (m *ModelOut) Executor(id string) *ExecutorOut {
	if m == nil {
		return nil
	}
	for i := range m.Executors {
		if m.Executors[i].PeerID == id {
			return &m.Executors[i]
		}
	}
	return nil
}

// QueryOut is what query prints.
type QueryOut struct {
	ModelID   string        `json:"model_id"`
	Executors []ExecutorOut `json:"executors"`
}

// Peers returns the executors' peer ids, in order.
func (q QueryOut) Peers() []string {
	var out []string
	for _, x := range q.Executors {
		out = append(out, x.PeerID)
	}
	return out
}

// StatsFields are the figures of one validator.
type StatsFields struct {
	Executors             int    `json:"executors"`
	Healthy               int    `json:"healthy"`
	Overloaded            int    `json:"overloaded"`
	Stale                 int    `json:"stale"`
	Models                int    `json:"models"`
	AnnouncementsAccepted uint64 `json:"announcements_accepted"`
	HeartbeatsAccepted    uint64 `json:"heartbeats_accepted"`
	MessagesRejected      uint64 `json:"messages_rejected"`
	MessagesIgnored       uint64 `json:"messages_ignored"`
	UptimeSeconds         uint64 `json:"uptime_seconds"`
	AnnouncementsPulled   uint64 `json:"announcements_pulled"`
	ExecutorsRemoved      uint64 `json:"executors_removed"`
}

// StatsOut is what stats prints.
type StatsOut struct {
	StatsFields
	Validators []struct {
		StatsFields
		Validator string `json:"validator"`
	} `json:"validators"`
}

// ClientJSON runs `lloom client args… --json` with env added and decodes
// its stdout into v. It returns an error (for WaitFor) when the command
// fails, writes to stderr, or prints anything but one JSON value.
func (h *Harness) ClientJSON(env []string, v any, args ...string) (Result, error) {
	h.t.Helper()
	r := h.Run(env, append(append([]string{"client"}, args...), "--json")...)
	if r.Code != 0 || r.Stderr != "" {
		return r, fmt.Errorf("%s", r)
	}
	if err := decodeStrict(r.Stdout, v); err != nil {
		return r, fmt.Errorf("%s\nstdout is not the JSON expected: %w", r, err)
	}
	return r, nil
}

// decodeStrict decodes exactly one JSON value from s into v.
func decodeStrict(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("more than one JSON value")
	}
	return nil
}

// List runs `lloom client list --json --validator validators`.
func (h *Harness) List(validators string) (ModelsOut, error) {
	h.t.Helper()
	var out ModelsOut
	_, err := h.ClientJSON(nil, &out, "list", "--validator", validators)
	return out, err
}

// Discover runs `lloom client discover --json --validator validators`.
func (h *Harness) Discover(validators string) (ModelsOut, error) {
	h.t.Helper()
	var out ModelsOut
	_, err := h.ClientJSON(nil, &out, "discover", "--validator", validators)
	return out, err
}

// Query runs `lloom client query MODEL --json --validator validators`.
func (h *Harness) Query(validators, model string) (QueryOut, error) {
	h.t.Helper()
	var out QueryOut
	_, err := h.ClientJSON(nil, &out, "query", model, "--validator", validators)
	return out, err
}

// Stats runs `lloom client stats --json --validator validators`.
func (h *Harness) Stats(validators string) (StatsOut, error) {
	h.t.Helper()
	var out StatsOut
	_, err := h.ClientJSON(nil, &out, "stats", "--validator", validators)
	return out, err
}

// Serving is a WaitFor condition: `client list` on validators shows every
// peer of want (model id → peer ids) healthy, and no other executor for
// those models.
func (h *Harness) Serving(validators string, want map[string][]string) func() error {
	return func() error {
		got, err := h.List(validators)
		if err != nil {
			return err
		}
		return serves(got, want)
	}
}

// serves reports how got differs from want for want's models: each served
// by exactly those peers, all healthy. Other models are not looked at.
func serves(got ModelsOut, want map[string][]string) error {
	for model, peers := range want {
		m := got.Model(model)
		if m == nil {
			return fmt.Errorf("client list shows no %q; it shows %v", model, got.IDs())
		}
		var have []string
		for _, x := range m.Executors {
			if x.Status != "healthy" {
				return fmt.Errorf("model %q: executor %s is %s, want healthy", model, x.PeerID, x.Status)
			}
			have = append(have, x.PeerID)
		}
		if !sameSet(have, peers) {
			return fmt.Errorf("model %q is served by %v, want %v", model, have, peers)
		}
	}
	return nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// compact is s as one line of JSON, for messages.
func compact(s string) string {
	var b bytes.Buffer
	if json.Compact(&b, []byte(s)) != nil {
		return s
	}
	return b.String()
}
