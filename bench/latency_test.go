package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/node/executor"
	"github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/protocol/pb"
)

// pollTimeout bounds every wait for a client to see a change.
const pollTimeout = 60 * time.Second

// waitVisible asks the client for model back to back until some executor
// serves it (want true) or none does (want false), and returns when the
// answer that showed it arrived.
func waitVisible(b *testing.B, c *client.Client, model string, want bool) time.Time {
	b.Helper()
	deadline := time.Now().Add(pollTimeout)
	for {
		res, err := c.FindModel(context.Background(), model, nil)
		if err != nil {
			b.Fatal(err)
		}
		if (len(res.Executors) > 0) == want {
			return time.Now()
		}
		if time.Now().After(deadline) {
			b.Fatalf("model %s visible=%v not reached within %s", model, want, pollTimeout)
		}
	}
}

// BenchmarkAnnounceWarm measures announce → discoverable with the mesh
// formed: a running executor replaces its model set with one holding a
// new model, and a client queries back to back until the validator
// returns it. Each iteration is one sample, timed from the executor's
// SetModels to the answer that lists the model.
func BenchmarkAnnounceWarm(b *testing.B) {
	v := startValidator(b, nil, nil)
	base := nodetest.Model("base:1b", 4)
	e, _ := nodetest.StartExecutor(b, []*validator.Validator{v}, []*pb.ModelDescriptor{base}, func(cfg *executor.Config) {
		cfg.HeartbeatInterval = time.Second
	})
	c := nodetest.NewClient(b, v)
	waitVisible(b, c, "base:1b", true)

	d := Dist{Name: "warm"}
	i := 0
	for b.Loop() {
		model := fmt.Sprintf("warm-%d:1b", i)
		i++
		start := time.Now()
		if err := e.SetModels([]*pb.ModelDescriptor{base, nodetest.Model(model, 4)}); err != nil {
			b.Fatal(err)
		}
		d.Add(waitVisible(b, c, model, true).Sub(start))
	}
	d.Report(b, "ms")
}

// BenchmarkAnnounceColdAndRemoval measures, per iteration, a new executor
// joining (from executor.New to the client's answer listing its model:
// host start, connection, GossipSub join, INITIAL, validation) and then its
// graceful shutdown (from Close, which publishes a REMOVAL, to the first
// answer without it).
func BenchmarkAnnounceColdAndRemoval(b *testing.B) {
	v := startValidator(b, nil, nil)
	c := nodetest.NewClient(b, v)
	boot := nodetest.Bootstraps(b, v)
	cold := Dist{Name: "cold"}
	removal := Dist{Name: "removal"}
	i := 0
	for b.Loop() {
		model := fmt.Sprintf("cold-%d:1b", i)
		i++
		cfg := executor.DefaultConfig()
		cfg.Key = nodetest.Key(b)
		cfg.Listen = nodetest.Loopback()
		cfg.Validators = boot
		cfg.Models = []*pb.ModelDescriptor{nodetest.Model(model, 4)}
		cfg.HeartbeatInterval = time.Second

		start := time.Now()
		e, err := executor.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- e.Run(context.Background()) }()
		cold.Add(waitVisible(b, c, model, true).Sub(start))

		start = time.Now()
		go e.Close()
		removal.Add(waitVisible(b, c, model, false).Sub(start))
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		e.Close()
	}
	cold.Report(b, "ms")
	removal.Report(b, "ms")
}
