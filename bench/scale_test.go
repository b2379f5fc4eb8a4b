package bench

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
)

// BenchmarkScale runs a simulated network of 100, 1,000 and 10,000
// executors heartbeating every 10 s and every 2 s (-full; CI: 100 every 1 s). The
// load generator (a child process) signs every announcement and heartbeat
// with the executor's own Ed25519 key when it is due, jittered by ±10 %
// from a random phase, as executors do, and publishes them through one
// bare peer connected to the validator.
//
// After the fleet is registered and one interval has passed, each
// iteration watches the validator for one heartbeat interval: its CPU (this
// process's CPU time over wall time; the generator runs elsewhere) and the
// executors it reports stale, four times a second, which must stay 0.
// Then a fresh validator joins, connected to the first one only, and the
// time until it holds every executor is its convergence time: it learns
// executors from relayed heartbeats and pulls each announcement, falling
// back to asking the relaying validator since the simulated executors
// cannot be dialed.
func BenchmarkScale(b *testing.B) {
	for _, iv := range size([]time.Duration{time.Second}, []time.Duration{10 * time.Second, 2 * time.Second}) {
		for _, n := range size([]int{100}, []int{100, 1000, 10000}) {
			b.Run(fmt.Sprintf("executors=%d/interval=%s", n, iv), func(b *testing.B) { benchScale(b, n, iv) })
		}
	}
}

func benchScale(b *testing.B, n int, interval time.Duration) {
	c := &Counter{}
	v := startValidator(b, c, func(cfg *validator.Config) {
		cfg.Registry.StaleAfter = 3 * interval
		cfg.Registry.RemoveAfter = max(2*time.Minute, 4*interval)
		cfg.Registry.MaxExecutors = n
		if *seenTTL > 0 {
			cfg.GossipOptions = append(cfg.GossipOptions, pubsub.WithSeenMessagesTTL(*seenTTL))
		}
	})
	mem0 := ReadMemory()
	g := startGenerator(b, v)
	g.Acknowledge(c.Done)
	announced := time.Now()
	wait, err := g.Start(Request{Op: "schedule", Executors: n, Seed: uint64(n), Interval: interval, Duration: 30 * time.Minute, Window: 1024})
	if err != nil {
		b.Fatal(err)
	}
	waitLen(b, v, n, 2*time.Minute)
	registered := time.Since(announced)
	time.Sleep(interval) // every executor has sent a heartbeat

	var maxStale atomic.Uint64
	watch := func(vs ...*validator.Validator) (stop func()) {
		maxStale.Store(0)
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					for _, v := range vs {
						if s := v.Stats().GetStale(); s > maxStale.Load() {
							maxStale.Store(s)
						}
					}
				}
			}
		})
		return func() { close(done); wg.Wait() }
	}
	stopWatch := watch(v)
	var cores []float64
	accepted0 := stats(v)
	steady := time.Now()
	for b.Loop() {
		m := StartCPU()
		time.Sleep(interval)
		cpu, wall := m.Stop()
		cores = append(cores, cpu.Seconds()/wall.Seconds())
	}
	stopWatch()
	steadyStale := maxStale.Load()
	rate := float64(stats(v)-accepted0) / time.Since(steady).Seconds()
	mem := ReadMemory()
	drops, qf, und, rpcs := c.Drops(), c.QueueFull.Load(), c.Undeliverable.Load(), c.DroppedRPCs.Load()
	if err := g.Phase(); err != nil {
		b.Fatal(err)
	}

	if *heapProfile != "" {
		writeHeapProfile(b, *heapProfile)
	}
	perExec := (float64(mem.HeapAlloc) - float64(mem0.HeapAlloc)) / float64(n)
	if *noJoin {
		if err := g.Stop(); err != nil {
			b.Fatal(err)
		}
		if _, err := wait(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(mean(cores), "validator-cores")
		b.ReportMetric(float64(steadyStale), "wrongly-stale")
		b.ReportMetric(MiB(mem.HeapAlloc), "heap-MiB")
		b.ReportMetric(MiB(mem.RSS), "rss-MiB")
		b.Logf("%d executors every %s, %d intervals: validator %.3f cores; most stale at once %d; live heap %.1f MiB (%.0f B per executor), RSS %.1f MiB",
			n, interval, len(cores), mean(cores), steadyStale, MiB(mem.HeapAlloc), perExec, MiB(mem.RSS))
		return
	}

	// A fresh validator joins, peered with the first one only.
	start := time.Now()
	c2 := &Counter{}
	v2 := startValidator(b, c2, func(cfg *validator.Config) {
		cfg.Registry.StaleAfter = 3 * interval
		cfg.Registry.MaxExecutors = n
		cfg.Peers = nodetest.Bootstraps(b, v)
	})
	waitLen(b, v2, n, 3*interval+2*time.Minute)
	converged := time.Since(start)
	stopWatch = watch(v, v2)
	time.Sleep(interval)
	stopWatch()

	if err := g.Stop(); err != nil {
		b.Fatal(err)
	}
	rep, err := wait()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(mean(cores), "validator-cores")
	b.ReportMetric(maxf(cores), "validator-cores-max")
	b.ReportMetric(rate, "accepted/s")
	b.ReportMetric(converged.Seconds(), "convergence-s")
	b.ReportMetric(registered.Seconds(), "announce-all-s")
	steadyLate := rep.MaxLate
	if len(rep.PhaseLate) > 0 {
		steadyLate = rep.PhaseLate[0]
	}
	b.ReportMetric(float64(steadyStale), "wrongly-stale")
	b.ReportMetric(float64(maxStale.Load()), "wrongly-stale-after-join")
	b.ReportMetric(float64(drops), "drops")
	b.ReportMetric(float64(c.Drops()-drops+c2.Drops()), "drops-during-join")
	b.ReportMetric(perExec, "heap-B/executor")
	b.ReportMetric(MiB(mem.HeapAlloc), "heap-MiB")
	b.ReportMetric(MiB(mem.RSS), "rss-MiB")
	b.Logf("%d executors every %s: %d intervals observed; validator %.3f cores (max %.3f) for %.0f messages/s; all %d registered %.2fs after the generator started",
		n, interval, len(cores), mean(cores), maxf(cores), rate, n, registered.Seconds())
	b.Logf("steady state: most executors reported stale at once: %d; generator worst lateness %s; drops %d (validation queue %d, subscription %d, peer queues %d)",
		steadyStale, steadyLate.Round(time.Millisecond), drops, qf, und, rpcs)
	b.Logf("fresh validator held all %d after %.2fs (%d pulled); then most stale at once on either: %d; generator worst lateness over the whole run %s, %d heartbeats, %d publish errors, %d dropped RPCs",
		n, converged.Seconds(), v2.Stats().GetAnnouncementsPulled(), maxStale.Load(), rep.MaxLate.Round(time.Millisecond), rep.Heartbeats, rep.PublishErrs, rep.DroppedRPCs)
	b.Logf("drops during the join: first validator %d (validation queue %d), fresh validator %d (validation queue %d, subscription %d)",
		c.Drops()-drops, c.QueueFull.Load()-qf, c2.Drops(), c2.QueueFull.Load(), c2.Undeliverable.Load())
	b.Logf("memory: live heap %.1f MiB (%.0f B per executor over the empty validator), RSS %.1f MiB (peak %.1f)",
		MiB(mem.HeapAlloc), perExec, MiB(mem.RSS), MiB(mem.HWM))
}

// waitLen waits until v holds n executors.
func waitLen(b *testing.B, v *validator.Validator, n int, within time.Duration) {
	b.Helper()
	deadline := time.Now().Add(within)
	for v.Registry().Len() < n {
		if time.Now().After(deadline) {
			b.Fatalf("validator holds %d of %d executors after %s", v.Registry().Len(), n, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// writeHeapProfile writes the live heap's profile, after a collection.
func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}
