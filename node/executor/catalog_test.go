package executor

import (
	"testing"

	"github.com/lloom/lloom/pkg/backend"
	"github.com/lloom/lloom/protocol/pb"
)

// Discovered models take the context length the backend states (vLLM's
// max_model_len); the template's own value, when set, wins; otherwise it
// stays unknown (0), never made up.
func TestDiscoveredModelsTakeTheBackendsContextLength(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DiscoverTemplate = &pb.ModelDescriptor{Capacity: 2, Available: true}
	c := &catalog{cfg: &cfg}
	got, changed := c.discoveredLocked([]backend.Model{{ID: "big", ContextLength: 32768}, {ID: "plain"}}, nil)
	if !changed || len(got) != 2 {
		t.Fatalf("discovered %v (changed %v), want two models", got, changed)
	}
	ctx := map[string]uint32{}
	for _, d := range got {
		ctx[d.GetModelId()] = d.GetMaxContextLength()
	}
	if ctx["big"] != 32768 || ctx["plain"] != 0 {
		t.Fatalf("context lengths %v, want big 32768 (from the backend) and plain 0 (unknown)", ctx)
	}

	cfg.DiscoverTemplate.MaxContextLength = 4096
	c = &catalog{cfg: &cfg}
	got, _ = c.discoveredLocked([]backend.Model{{ID: "big", ContextLength: 32768}}, nil)
	if got[0].GetMaxContextLength() != 4096 {
		t.Fatalf("context length %d, want the operator's 4096", got[0].GetMaxContextLength())
	}
}
