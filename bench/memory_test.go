package bench

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/pkg/registry"
)

// BenchmarkRegistryMemory measures what the registry keeps per executor
// at 10,000 executors (-full) of 5 models each, envelopes included: the
// growth of the live heap while it takes each executor's announcement and
// heartbeat, decoded from fresh copies of the gossip messages as a
// validator decodes them. The whole validator's heap and RSS at 10,000
// executors are in BenchmarkScale.
func BenchmarkRegistryMemory(b *testing.B) {
	n := size(1000, 10000)
	xs := NewFleet(n, 11)
	msgs, err := Messages(xs, 1, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	var per float64
	for b.Loop() {
		r, err := registry.New(registry.Config{StaleAfter: time.Hour, RemoveAfter: 2 * time.Hour, MaxExecutors: n})
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		before := ReadMemory()
		for i := range n {
			a, err := node.DecodeGossip(bytes.Clone(msgs[i]))
			if err != nil {
				b.Fatal(err)
			}
			h, err := node.DecodeGossip(bytes.Clone(msgs[n+i]))
			if err != nil {
				b.Fatal(err)
			}
			va, err := a.Announcement.Verify()
			if err != nil {
				b.Fatal(err)
			}
			vh, err := h.Heartbeat.Verify()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := r.ApplyAnnouncement(va, now); err != nil {
				b.Fatal(err)
			}
			if _, err := r.ApplyHeartbeat(vh, now); err != nil {
				b.Fatal(err)
			}
		}
		after := ReadMemory()
		runtime.KeepAlive(r)
		per = (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(n)
	}
	b.ReportMetric(per, "B/executor")
	b.Logf("%d executors of %d models: %.0f bytes of live heap each, envelopes included", n, ModelsPerExecutor, per)
}
