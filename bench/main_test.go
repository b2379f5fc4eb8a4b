package bench

import (
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
)

// full selects the sizes documented in docs/PERFORMANCE.md; without it the
// benchmarks run at sizes that take seconds, for CI.
var full = flag.Bool("full", false, "run the full-size benchmarks (minutes) instead of the CI sizes (seconds)")

// Flags for long steady-state runs of BenchmarkScale.
var (
	noJoin      = flag.Bool("nojoin", false, "BenchmarkScale: skip the fresh validator's join")
	heapProfile = flag.String("heapprofile", "", "BenchmarkScale: write the validator's live heap profile to this file when memory is measured")
	seenTTL     = flag.Duration("seenttl", 0, "BenchmarkScale: GossipSub seen-messages TTL of the validator (0: lloom's setting)")
)

// size returns ci or, with -full, fullSize.
func size[T any](ci, fullSize T) T {
	if *full {
		return fullSize
	}
	return ci
}

func TestMain(m *testing.M) {
	if os.Getenv(ChildEnv) == "hosts" {
		if err := RunHosts(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "hosts:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(ExecutorEnv) != "" {
		// The executor process of BenchmarkInferenceConcurrent.
		if err := RunExecutorProcess(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "executor:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(ChildEnv) == "gen" {
		if err := RunGenerator(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "generator:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startValidator starts a validator on loopback whose router also feeds c,
// with no query rate limit (the benchmarks are the only clients).
func startValidator(b *testing.B, c *Counter, mutate func(*validator.Config)) *validator.Validator {
	b.Helper()
	v, _ := nodetest.StartValidator(b, func(cfg *validator.Config) {
		cfg.QueryRate = 0
		cfg.SweepInterval = time.Second // the default, not the tests' 50 ms
		if c != nil {
			cfg.GossipOptions = append(cfg.GossipOptions, c.Option())
		}
		if mutate != nil {
			mutate(cfg)
		}
	})
	return v
}

// startGenerator starts a load generator connected to v.
func startGenerator(b *testing.B, vs ...*validator.Validator) *Generator {
	b.Helper()
	g, err := StartGenerator()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() })
	var addrs []string
	for _, v := range vs {
		addrs = append(addrs, v.Addrs()[0])
	}
	if _, err := g.Do(Request{Op: "connect", Addrs: addrs}); err != nil {
		b.Fatal(err)
	}
	return g
}
