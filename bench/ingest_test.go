package bench

import (
	"testing"
	"time"

	"github.com/lloom/lloom/node/validator"
)

// BenchmarkIngest measures how many signed announcements and heartbeats a
// validator accepts into its registry per second and per CPU-second, over
// a real libp2p connection from many executor identities, next to the raw
// Ed25519 verification rate of one core measured in the same run.
//
// Each iteration is one fleet of fresh identities: the generator (a child
// process, so that this process's CPU time is the validator's) pre-signs
// every executor's INITIAL announcement and some heartbeats, then publishes
// them as fast as the validator finishes them, keeping at most a window in
// flight: the validator is saturated, and its queues (4,096 messages) never
// overflow unless it drops work elsewhere. Drops are counted by a raw
// tracer in the validator's router.
func BenchmarkIngest(b *testing.B) {
	benchIngest(b, size(500, 10000), size(1, 3), 1024, 0)
}

// BenchmarkIngestPaced publishes open-loop at a fixed rate, as executors
// do, with no feedback: every message dropped by a full queue would show.
// The rate (-full: 4,000 messages per second) is about half of what the
// validator accepted per second when saturated on the machine of
// docs/PERFORMANCE.md, with the generator beside it.
func BenchmarkIngestPaced(b *testing.B) {
	benchIngest(b, size(500, 10000), size(1, 3), 0, size(2000.0, 4000.0))
}

func benchIngest(b *testing.B, executors, rounds, window int, rate float64) {
	c := &Counter{}
	v := startValidator(b, c, func(cfg *validator.Config) {
		cfg.Registry.MaxExecutors = 1 << 20 // each iteration adds a fleet
	})
	g := startGenerator(b, v)
	g.Acknowledge(c.Done)
	ss := unsealAll(b, sample().hbs)

	var (
		msgs, accepted  uint64
		cpu, wall, gcpu time.Duration
		verify          []float64
		genDrops        uint64
	)
	seed := uint64(1000)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		verify = append(verify, VerifyRate(ss, 300*time.Millisecond))
		seed++
		if _, err := g.Do(Request{Op: "prepare", Executors: executors, Seed: seed, Rounds: rounds}); err != nil {
			b.Fatal(err)
		}
		before := stats(v)
		base := c.Done()
		b.StartTimer()

		m := StartCPU()
		rep, err := g.Do(Request{Op: "publish", Window: window, Rate: rate})
		if err != nil {
			b.Fatal(err)
		}
		// Wait for the validator to finish what is in flight.
		target := base + uint64(rep.Messages)
		deadline := time.Now().Add(60 * time.Second)
		for c.Done() < target && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		dc, dw := m.Stop()

		b.StopTimer()
		after := stats(v)
		msgs += uint64(rep.Messages)
		accepted += after - before
		cpu += dc
		wall += dw
		gcpu += rep.CPU
		genDrops += rep.DroppedRPCs
		if rep.PublishErrs > 0 {
			b.Fatalf("%d publish errors in the generator", rep.PublishErrs)
		}
		verify = append(verify, VerifyRate(ss, 300*time.Millisecond))
		b.StartTimer()
	}
	b.StopTimer()

	vps := mean(verify)
	perCPU := float64(accepted) / cpu.Seconds()
	b.ReportMetric(float64(accepted)/wall.Seconds(), "accepted/s")
	b.ReportMetric(perCPU, "accepted/cpu-s")
	b.ReportMetric(vps, "verify/cpu-s")
	b.ReportMetric(perCPU/vps, "ratio")
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "validator-cores")
	b.ReportMetric(float64(c.Drops()+genDrops), "drops")
	b.Logf("%d executors x (1 announcement + %d heartbeats), %d messages published, %d accepted in %s (window %d, rate %.0f/s)",
		executors, rounds, msgs, accepted, wall.Round(time.Millisecond), window, rate)
	b.Logf("validator: %.0f accepted/s wall, %.0f accepted per CPU-second, %.2f cores busy; raw Ed25519 verify %.0f per CPU-second (min %.0f, max %.0f): ratio %.2f",
		float64(accepted)/wall.Seconds(), perCPU, cpu.Seconds()/wall.Seconds(), vps, minf(verify), maxf(verify), perCPU/vps)
	b.Logf("generator: %.2f cores busy; drops: validation queue full %d, throttled %d, peer queue full %d (generator %d), subscription full %d; rejected %d, ignored %d",
		gcpu.Seconds()/wall.Seconds(), c.QueueFull.Load(), c.Throttled.Load(), c.DroppedRPCs.Load(), genDrops,
		c.Undeliverable.Load(), c.Rejected.Load(), c.Ignored.Load())
	if accepted != msgs {
		b.Logf("WARNING: %d of %d messages were not accepted", msgs-accepted, msgs)
	}
}

// stats is the validator's count of accepted messages.
func stats(v *validator.Validator) uint64 {
	st := v.Stats()
	return st.GetAnnouncementsAccepted() + st.GetHeartbeatsAccepted()
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func minf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = min(m, x)
	}
	return m
}

func maxf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
