package nodetest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/node/executor"
	. "github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/protocol/pb"
)

// network is a validator, three executors with overlapping models, and a
// client: the shape most tests start from.
type network struct {
	v      *validator.Validator
	ex     []*executor.Executor
	run    []*Running
	client *client.Client
}

func startNetwork(t *testing.T, mutate func(*validator.Config)) *network {
	t.Helper()
	v, _ := StartValidator(t, mutate)
	n := &network{v: v}
	sets := [][]string{{"llama3.2:3b", "gpt-4"}, {"gpt-4", "mistral-7b"}, {"gpt-4"}}
	for _, set := range sets {
		var models []*pb.ModelDescriptor
		for _, id := range set {
			models = append(models, Model(id, 4))
		}
		e, r := StartExecutor(t, []*validator.Validator{v}, models, nil)
		n.ex = append(n.ex, e)
		n.run = append(n.run, r)
	}
	for i, e := range n.ex {
		Eventually(t, fmt.Sprintf("executor %d registered", i), Registered(v, e.ID(), sets[i]...))
	}
	n.client = NewClient(t, v)
	return n
}

func ids(xs []*client.Executor) []peer.ID {
	var out []peer.ID
	for _, x := range xs {
		out = append(out, x.PeerID)
	}
	return out
}

func TestAnnounceDiscoverQuery(t *testing.T) {
	n := startNetwork(t, nil)
	ctx := context.Background()

	list, err := n.client.ListModelsWithExecutors(ctx, &pb.QueryFilters{})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, m := range list.Models {
		counts[m.ID] = len(m.Executors)
		for _, x := range m.Executors {
			if !x.Verified || x.Status != pb.ExecutorStatus_EXECUTOR_STATUS_HEALTHY {
				t.Errorf("model %s executor %s: verified=%v status=%v, want verified and healthy", m.ID, x.PeerID, x.Verified, x.Status)
			}
		}
	}
	want := map[string]int{"gpt-4": 3, "llama3.2:3b": 1, "mistral-7b": 1}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("discover: executors per model %v, want %v", counts, want)
	}

	res, err := n.client.FindModel(ctx, "mistral-7b", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Executors) != 1 || res.Executors[0].PeerID != n.ex[1].ID() {
		t.Fatalf("query mistral-7b: got %v, want [%s]", ids(res.Executors), n.ex[1].ID())
	}
	x := res.Executors[0]
	if x.Model.GetBackendType() != "ollama" || x.Capacity != 4 || len(x.Addrs) == 0 {
		t.Errorf("query mistral-7b: backend %q capacity %d addrs %v; want ollama, 4, some addrs", x.Model.GetBackendType(), x.Capacity, x.Addrs)
	}

	none, err := n.client.FindModel(ctx, "no-such-model", nil)
	if err != nil {
		t.Fatalf("query of an unknown model: %v, want success with no executors", err)
	}
	if len(none.Executors) != 0 {
		t.Fatalf("query of an unknown model returned %d executors", len(none.Executors))
	}
}

func TestLoadOrderAndOverload(t *testing.T) {
	n := startNetwork(t, nil)
	ctx := context.Background()
	// Executor 0 busiest, executor 2 idle, executor 1 in between.
	loads := []uint32{3, 1, 0}
	for i, e := range n.ex {
		if err := e.SetLoad("gpt-4", loads[i], 0, 0); err != nil {
			t.Fatal(err)
		}
		if err := e.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := []peer.ID{n.ex[2].ID(), n.ex[1].ID(), n.ex[0].ID()}
	Eventually(t, "least loaded first", func() error {
		res, err := n.client.FindModel(ctx, "gpt-4", nil)
		if err != nil {
			return err
		}
		if got := ids(res.Executors); fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("order %v, want %v", got, want)
		}
		if res.Executors[2].Active != 3 {
			return fmt.Errorf("busiest executor shows %d active, want 3", res.Executors[2].Active)
		}
		return nil
	})

	// At capacity (2 active + 2 queued of 4) executor 2 is overloaded and last.
	if err := n.ex[2].SetLoad("gpt-4", 2, 2, 0); err != nil {
		t.Fatal(err)
	}
	if err := n.ex[2].Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	Eventually(t, "overloaded executor last and marked", func() error {
		res, err := n.client.FindModel(ctx, "gpt-4", nil)
		if err != nil {
			return err
		}
		last := res.Executors[len(res.Executors)-1]
		if last.PeerID != n.ex[2].ID() || last.Status != pb.ExecutorStatus_EXECUTOR_STATUS_OVERLOADED {
			return fmt.Errorf("last is %s (%v), want %s overloaded", last.PeerID, last.Status, n.ex[2].ID())
		}
		return nil
	})
	st := n.v.Stats()
	if st.GetOverloaded() != 1 || st.GetHealthy() != 2 {
		t.Errorf("stats: %d overloaded, %d healthy; want 1 and 2", st.GetOverloaded(), st.GetHealthy())
	}
}

func TestRuntimeUpdate(t *testing.T) {
	n := startNetwork(t, nil)
	ctx := context.Background()
	e := n.ex[2]
	m := Model("qwen2.5:7b", 2)
	if err := e.PutModel(m); err != nil {
		t.Fatal(err)
	}
	Eventually(t, "added model registered", Registered(n.v, e.ID(), "gpt-4", "qwen2.5:7b"))
	res, err := n.client.FindModel(ctx, "qwen2.5:7b", nil)
	if err != nil || len(res.Executors) != 1 {
		t.Fatalf("query of the added model: %v, %d executors; want 1", err, len(res.Executors))
	}

	m.Pricing = &pb.Pricing{InputTokenPriceWei: "5", OutputTokenPriceWei: "7"}
	if err := e.PutModel(m); err != nil {
		t.Fatal(err)
	}
	Eventually(t, "new price visible", func() error {
		res, err := n.client.FindModel(ctx, "qwen2.5:7b", nil)
		if err != nil {
			return err
		}
		if len(res.Executors) != 1 || res.Executors[0].Model.GetPricing().GetOutputTokenPriceWei() != "7" {
			return errors.New("price not updated")
		}
		return nil
	})

	if err := e.RemoveModel("gpt-4"); err != nil {
		t.Fatal(err)
	}
	Eventually(t, "removed model gone", Registered(n.v, e.ID(), "qwen2.5:7b"))
	res, err = n.client.FindModel(ctx, "gpt-4", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range res.Executors {
		if x.PeerID == e.ID() {
			t.Fatalf("executor %s still listed for gpt-4 after removing it", e.ID())
		}
	}
}

func TestRemovalOnShutdown(t *testing.T) {
	n := startNetwork(t, nil)
	n.run[0].Stop(t) // graceful: REMOVAL published before Run returns
	Eventually(t, "executor removed", Absent(n.v, n.ex[0].ID()))
	res, err := n.client.FindModel(context.Background(), "llama3.2:3b", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Executors) != 0 {
		t.Fatalf("llama3.2:3b still served by %v after its only executor left", ids(res.Executors))
	}
}

func TestSilentExecutorTurnsStaleThenRemoved(t *testing.T) {
	n := startNetwork(t, func(c *validator.Config) {
		c.Registry.StaleAfter = time.Second
		c.Registry.RemoveAfter = 2 * time.Second
	})
	crashed := n.ex[1]
	crashed.Host().Close() // a crash: no REMOVAL, no more heartbeats
	Eventually(t, "crashed executor stale", func() error {
		res, err := n.client.FindModel(context.Background(), "mistral-7b", &pb.QueryFilters{IncludeStale: true})
		if err != nil {
			return err
		}
		if len(res.Executors) != 1 || res.Executors[0].Status != pb.ExecutorStatus_EXECUTOR_STATUS_STALE {
			return fmt.Errorf("mistral-7b executors %v, want the crashed one, stale", ids(res.Executors))
		}
		return nil
	})
	Eventually(t, "crashed executor removed", Absent(n.v, crashed.ID()))
	// The others kept heartbeating: still healthy.
	for _, e := range []*executor.Executor{n.ex[0], n.ex[2]} {
		if err := Registered(n.v, e.ID(), modelIDs(e)...)(); err != nil {
			t.Error(err)
		}
	}
	if st := n.v.Stats(); st.GetStale() != 0 || st.GetExecutors() != 2 {
		t.Errorf("stats after removal: %d executors, %d stale; want 2 and 0", st.GetExecutors(), st.GetStale())
	}
}

func modelIDs(e *executor.Executor) []string {
	var out []string
	for _, m := range e.Models() {
		out = append(out, m.GetModelId())
	}
	return out
}
