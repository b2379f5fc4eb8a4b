package validator

import (
	"testing"

	"github.com/lloom/lloom/pkg/registry"
	"github.com/lloom/lloom/protocol/pb"
)

// A subscriber's view turns the registry's changes into what it sees: an
// executor entering the view is ADDED there, one leaving it REMOVED.
func TestViewKind(t *testing.T) {
	const (
		added   = pb.WatchEventKind_WATCH_EVENT_KIND_ADDED
		updated = pb.WatchEventKind_WATCH_EVENT_KIND_UPDATED
		load    = pb.WatchEventKind_WATCH_EVENT_KIND_LOAD
		removed = pb.WatchEventKind_WATCH_EVENT_KIND_REMOVED
		none    = pb.WatchEventKind_WATCH_EVENT_KIND_UNSPECIFIED
	)
	state := func(verified bool, models ...string) registry.ExecutorState {
		s := registry.ExecutorState{Verified: verified}
		for _, m := range models {
			s.Models = append(s.Models, registry.ModelState{ID: m})
		}
		return s
	}
	for _, c := range []struct {
		name   string
		view   view
		change registry.Change
		want   pb.WatchEventKind
	}{
		{"registered unverified, verified only", view{}, registry.Change{Kind: registry.ChangeAdded, Executor: state(false, "a")}, none},
		{"registered unverified, all", view{unverified: true}, registry.Change{Kind: registry.ChangeAdded, Executor: state(false, "a")}, added},
		{"verified: enters the view", view{}, registry.Change{Kind: registry.ChangeUpdated, Executor: state(true, "a")}, added},
		{"verified, all: an update", view{unverified: true}, registry.Change{Kind: registry.ChangeUpdated, Executor: state(true, "a")}, updated},
		{"check failed: leaves the view", view{}, registry.Change{Kind: registry.ChangeUpdated, Executor: state(false, "a"), WasVerified: true}, removed},
		{"load of a verified one", view{}, registry.Change{Kind: registry.ChangeLoad, Executor: state(true, "a"), WasVerified: true}, load},
		{"load of another model's executor", view{model: "b"}, registry.Change{Kind: registry.ChangeLoad, Executor: state(true, "a"), WasVerified: true}, none},
		{"now serves the model", view{model: "b"}, registry.Change{Kind: registry.ChangeUpdated, Executor: state(true, "a", "b"), WasVerified: true, AddedModels: []string{"b"}}, added},
		{"no longer serves the model", view{model: "b"}, registry.Change{Kind: registry.ChangeUpdated, Executor: state(true, "a"), WasVerified: true, DroppedModels: []string{"b"}}, removed},
		{"removed while serving the model", view{model: "a"}, registry.Change{Kind: registry.ChangeRemoved, Executor: state(true, "a"), WasVerified: true}, removed},
		{"removed, never shown", view{}, registry.Change{Kind: registry.ChangeRemoved, Executor: state(false, "a")}, none},
	} {
		got, ok := c.view.kind(&c.change)
		if !ok {
			got = none
		}
		if got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
