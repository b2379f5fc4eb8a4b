package bench

import (
	"crypto/ed25519"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/lloom/lloom/node"
)

// sample is a small fleet's announcements and heartbeats, signed once per
// test binary for the per-message benchmarks.
var sample = sync.OnceValue(func() (s struct{ anns, hbs [][]byte }) {
	xs := NewFleet(256, 42)
	msgs, err := Messages(xs, 1, time.Now())
	if err != nil {
		panic(err)
	}
	s.anns, s.hbs = msgs[:len(xs)], msgs[len(xs):]
	return s
})

func unsealAll(b *testing.B, msgs [][]byte) []Signed {
	ss := make([]Signed, len(msgs))
	for i, m := range msgs {
		var err error
		if ss[i], err = Unseal(m); err != nil {
			b.Fatal(err)
		}
	}
	return ss
}

// BenchmarkVerifyEd25519 is the bound: one raw crypto/ed25519 verification
// of a heartbeat's envelope, nothing else.
func BenchmarkVerifyEd25519(b *testing.B) {
	ss := unsealAll(b, sample().hbs)
	i := 0
	cpuLoop(b, func() {
		s := ss[i%len(ss)]
		if !ed25519.Verify(s.Key, s.Msg, s.Sig) {
			b.Fatal("signature does not verify")
		}
		i++
	})
}

// cpuLoop runs f once per iteration on a locked OS thread and reports,
// besides the wall time per op, the thread's CPU time per op (cpu-ns/op),
// which other processes on a shared machine disturb far less.
func cpuLoop(b *testing.B, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu, n := ThreadCPUTime(), 0
	for b.Loop() {
		f()
		n++
	}
	b.ReportMetric(float64(ThreadCPUTime()-cpu)/float64(n), "cpu-ns/op")
}

// BenchmarkOpenHeartbeat is what every node's topic validator spends on a
// heartbeat before the registry: decoding the gossip message and the
// envelope, the field checks, and the signature.
func BenchmarkOpenHeartbeat(b *testing.B) {
	benchOpen(b, sample().hbs)
}

// BenchmarkOpenAnnouncement is BenchmarkOpenHeartbeat for announcements of
// five models.
func BenchmarkOpenAnnouncement(b *testing.B) {
	benchOpen(b, sample().anns)
}

func benchOpen(b *testing.B, msgs [][]byte) {
	b.ReportAllocs()
	now := time.Now()
	i := 0
	cpuLoop(b, func() {
		p, err := node.DecodeGossip(msgs[i%len(msgs)])
		if err == nil {
			err = node.CheckPayload(p, now, time.Hour)
		}
		if err != nil {
			b.Fatal(err)
		}
		i++
	})
}

// BenchmarkDecodeHeartbeat is the cheap half alone: everything but the
// signature.
func BenchmarkDecodeHeartbeat(b *testing.B) {
	b.ReportAllocs()
	msgs := sample().hbs
	i := 0
	cpuLoop(b, func() {
		if _, err := node.DecodeGossip(msgs[i%len(msgs)]); err != nil {
			b.Fatal(err)
		}
		i++
	})
}

// BenchmarkSignHeartbeat is what one simulated executor's heartbeat costs
// the load generator.
func BenchmarkSignHeartbeat(b *testing.B) {
	xs := NewFleet(64, 43)
	for _, x := range xs {
		x.AnnSeq = 1
	}
	now := time.Now()
	i := 0
	for b.Loop() {
		if _, err := xs[i%len(xs)].Heartbeat(now); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
