package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// jsonKinds maps the keys an object must have to their JSON kinds.
type jsonKinds map[string]string

func kindOf(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// checkKeys checks that obj has every key of want, each of its kind.
func checkKeys(t *testing.T, where string, obj map[string]any, want jsonKinds) {
	t.Helper()
	for k, kind := range want {
		v, ok := obj[k]
		if !ok {
			t.Errorf("%s: no %q key", where, k)
		} else if got := kindOf(v); got != kind {
			t.Errorf("%s: %q is %s (%v), want %s", where, k, got, v, kind)
		}
	}
}

var executorKinds = jsonKinds{
	"peer_id": "string", "status": "string", "active_requests": "number", "queued_requests": "number",
	"capacity": "number", "last_seen": "string", "addrs": "array", "backend_type": "string",
	"max_context_length": "number", "features": "array", "verified": "bool", "reached": "bool",
	"announcement_seq": "string",
}

func checkExecutorsShape(t *testing.T, where string, xs []any) {
	t.Helper()
	for i, x := range xs {
		obj, ok := x.(map[string]any)
		if !ok {
			t.Errorf("%s: executors[%d] is %s, want an object", where, i, kindOf(x))
			continue
		}
		checkKeys(t, fmt.Sprintf("%s: executors[%d]", where, i), obj, executorKinds)
	}
}

// checkModelsShape checks {"models":[{"model_id","executor_count","executors":[…]}]}.
func checkModelsShape(t *testing.T, where, stdout string) {
	t.Helper()
	var top map[string]any
	if err := json.Unmarshal([]byte(stdout), &top); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	checkKeys(t, where, top, jsonKinds{"models": "array"})
	models, _ := top["models"].([]any)
	for i, m := range models {
		obj, ok := m.(map[string]any)
		if !ok {
			t.Errorf("%s: models[%d] is %s", where, i, kindOf(m))
			continue
		}
		w := fmt.Sprintf("%s: models[%d]", where, i)
		checkKeys(t, w, obj, jsonKinds{"model_id": "string", "executor_count": "number", "executors": "array"})
		xs, _ := obj["executors"].([]any)
		checkExecutorsShape(t, w, xs)
	}
}

// checkQueryShape checks {"model_id","executors":[…]}.
func checkQueryShape(t *testing.T, where, stdout string) {
	t.Helper()
	var top map[string]any
	if err := json.Unmarshal([]byte(stdout), &top); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	checkKeys(t, where, top, jsonKinds{"model_id": "string", "executors": "array"})
	xs, _ := top["executors"].([]any)
	checkExecutorsShape(t, where, xs)
}

// checkStatsShape checks the figures every validator reports.
func checkStatsShape(t *testing.T, stdout string) {
	t.Helper()
	var top map[string]any
	if err := json.Unmarshal([]byte(stdout), &top); err != nil {
		t.Fatalf("client stats: %v", err)
	}
	checkKeys(t, "client stats", top, jsonKinds{
		"executors": "number", "healthy": "number", "overloaded": "number", "stale": "number", "models": "number",
		"announcements_accepted": "number", "heartbeats_accepted": "number", "messages_rejected": "number",
		"messages_ignored": "number", "messages_dropped": "number", "uptime_seconds": "number", "unverified": "number",
	})
}

// checkOneLine checks that a failed command printed one line on stderr,
// "lloom: …" with each of words, and nothing that looks like a crash.
func checkOneLine(t *testing.T, r Result, words ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "lloom: ") {
		t.Errorf("%s\nwant one line on stderr starting with \"lloom: \"", r)
		return
	}
	for _, w := range words {
		if !strings.Contains(lines[0], w) {
			t.Errorf("%s\nwant the message to mention %q", r, w)
		}
	}
}
