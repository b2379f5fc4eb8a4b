package bench

import (
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/pkg/registry"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// opened is a fleet's messages decoded as a validator holds them.
type opened struct {
	anns []*lp.VerifiedAnnouncement
	hbs  []*lp.VerifiedHeartbeat
}

var fleets sync.Map // executors -> func() opened

// openedFleet signs one announcement and one heartbeat per executor and
// decodes them, once per size and test binary.
func openedFleet(n int) opened {
	f, _ := fleets.LoadOrStore(n, sync.OnceValue(func() opened {
		xs := NewFleet(n, 7)
		msgs, err := Messages(xs, 1, time.Now())
		if err != nil {
			panic(err)
		}
		o := opened{anns: make([]*lp.VerifiedAnnouncement, n), hbs: make([]*lp.VerifiedHeartbeat, n)}
		Parallel(n, func(i int) {
			a, err := node.DecodeGossip(msgs[i])
			if err != nil {
				panic(err)
			}
			h, err := node.DecodeGossip(msgs[n+i])
			if err != nil {
				panic(err)
			}
			if o.anns[i], err = a.Announcement.Verify(); err != nil {
				panic(err)
			}
			if o.hbs[i], err = h.Heartbeat.Verify(); err != nil {
				panic(err)
			}
		})
		return o
	}))
	return f.(func() opened)()
}

// fill applies a fleet to a registry, seen now, each executor verified as
// if reached from an address of its own.
func fill(b *testing.B, r *registry.Registry, o opened, now time.Time) {
	b.Helper()
	for i := range o.anns {
		if _, err := r.ApplyAnnouncement(o.anns[i], now); err != nil {
			b.Fatal(err)
		}
		if _, err := r.Reached(o.anns[i], netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now); err != nil {
			b.Fatal(err)
		}
		if _, err := r.ApplyHeartbeat(o.hbs[i], now); err != nil {
			b.Fatal(err)
		}
	}
}

// queryKind is one kind of query the benchmarks ask, in several variants
// (models, offsets) asked round-robin.
type queryKind struct {
	name string
	qs   []*pb.QueryRequest
}

// queryKinds are find-model with filters, a page of 20 at offsets 0 to
// 180, and list with filters, the default page (100 models: summaries),
// at offsets 0 to 90.
func queryKinds() []queryKind {
	var find, list queryKind
	find.name, list.name = "find-model", "list"
	for i := range NumModels {
		find.qs = append(find.qs, &pb.QueryRequest{
			Query:   &pb.QueryRequest_FindModel{FindModel: &pb.FindModelQuery{ModelId: ModelID(i)}},
			Filters: &pb.QueryFilters{BackendType: "OLLAMA", MinContextLength: 4096},
			Limit:   20,
			Offset:  uint32(i%10) * 20,
		})
	}
	for i := range 10 {
		list.qs = append(list.qs, &pb.QueryRequest{
			Query:   &pb.QueryRequest_ListModels{ListModels: &pb.ListModelsQuery{}},
			Filters: &pb.QueryFilters{RequiredFeatures: []string{"chat"}, MaxInputPriceWei: "5000000000"},
			Offset:  uint32(i) * 10,
		})
	}
	return []queryKind{find, list}
}

// BenchmarkQueryServer times the registry's Query, and Query with the
// response's marshaling (what the validator does per query after reading
// it), at 10,000 executors with 5 of 100 models each (-full; 1,000 in CI).
// Each iteration is one query; queries/s per core is iterations over the
// CPU time of the benchmark's thread. It also reports the entries each
// query examined and what the validator charges for it, in query units.
func BenchmarkQueryServer(b *testing.B) {
	n := size(1000, 10000)
	r, err := registry.New(registry.Config{StaleAfter: time.Hour, RemoveAfter: 2 * time.Hour, MaxExecutors: n})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	fill(b, r, openedFleet(n), now)
	for _, k := range queryKinds() {
		b.Run(k.name, func(b *testing.B) {
			limits := make([]int, len(k.qs))
			for i, q := range k.qs {
				if limits[i], err = lp.CheckQuery(q); err != nil {
					b.Fatal(err)
				}
			}
			query := Dist{Name: "query"}
			marshal := Dist{Name: "query+marshal"}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu := ThreadCPUTime()
			i, size, scanned := 0, 0, 0
			for b.Loop() {
				j := i % len(k.qs)
				start := time.Now()
				resp, n := r.QueryWork(k.qs[j], limits[j], now)
				t1 := time.Now()
				out, err := proto.Marshal(resp)
				if err != nil || resp.GetErrorCode() != 0 {
					b.Fatal(err, resp.GetErrorMessage())
				}
				t2 := time.Now()
				query.Add(t1.Sub(start))
				marshal.Add(t2.Sub(start))
				size += len(out)
				scanned += n
				i++
			}
			used := ThreadCPUTime() - cpu
			query.Report(b, "us")
			marshal.Report(b, "us")
			b.ReportMetric(float64(i)/used.Seconds(), "queries/cpu-s")
			b.ReportMetric(float64(size)/float64(i), "bytes/response")
			b.ReportMetric(float64(scanned)/float64(i), "entries/query")
			b.ReportMetric(validator.QueryCost(size/i, scanned/i), "units/query")
		})
	}
}

// BenchmarkQueryEndToEnd asks a validator holding 10,000 executors (-full)
// over an open libp2p connection from another process, one query at a
// time for the latency distribution, then four at a time for throughput:
// queries per second, and per CPU-second of the validator's process.
// Each iteration is one batch of queries of each kind.
func BenchmarkQueryEndToEnd(b *testing.B) {
	n := size(1000, 10000)
	v := startValidator(b, nil, func(cfg *validator.Config) {
		cfg.Registry.MaxExecutors = n
	})
	fill(b, v.Registry(), openedFleet(n), time.Now())
	g := startGenerator(b, v)
	kinds := queryKinds()
	reqs := make([][][]byte, len(kinds))
	for i, k := range kinds {
		for _, q := range k.qs {
			m, err := proto.Marshal(q)
			if err != nil {
				b.Fatal(err)
			}
			reqs[i] = append(reqs[i], m)
		}
	}
	counts := []int{size(50, 1000), size(50, 1000)}
	lat := []Dist{{Name: "find-model"}, {Name: "list"}}
	var qps, perCPU [2][]float64
	var bytes [2]int
	for b.Loop() {
		for i := range kinds {
			rep, err := g.Do(Request{Op: "query", Queries: reqs[i], Count: counts[i], Concurrency: 1})
			if err != nil {
				b.Fatal(err)
			}
			for _, d := range rep.Latencies {
				lat[i].Add(d)
			}
			bytes[i] = rep.Bytes
			m := StartCPU()
			rep, err = g.Do(Request{Op: "query", Queries: reqs[i], Count: 2 * counts[i], Concurrency: 4})
			if err != nil {
				b.Fatal(err)
			}
			cpu, wall := m.Stop()
			qps[i] = append(qps[i], float64(rep.Messages)/wall.Seconds())
			perCPU[i] = append(perCPU[i], float64(rep.Messages)/cpu.Seconds())
		}
	}
	for i := range kinds {
		lat[i].Report(b, "ms")
		b.ReportMetric(mean(qps[i]), kinds[i].name+"-queries/s")
		b.ReportMetric(mean(perCPU[i]), kinds[i].name+"-queries/validator-cpu-s")
		b.Logf("%s: %d bytes per response; %.0f queries/s with 4 in flight, %.0f per CPU-second of the validator",
			kinds[i].name, bytes[i], mean(qps[i]), mean(perCPU[i]))
	}
}
