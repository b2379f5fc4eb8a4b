package registry

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// The benchmarks' network: 10,000 executors serving 5 of 100 models each,
// 500 executors per model.
const (
	benchExecutors = 10000
	benchModels    = 100
	modelsPerExec  = 5
)

type benchFixture struct {
	anns []*protocol.VerifiedAnnouncement
	hbs  []*protocol.VerifiedHeartbeat
}

var (
	benchOnce sync.Once
	benchFix  *benchFixture
)

func benchModelID(i int) string { return fmt.Sprintf("model-%03d:7b-instruct-q4", i%benchModels) }

// benchDesc is a realistic descriptor: what an ollama or vLLM executor
// would announce.
func benchDesc(exec, model int) *pb.ModelDescriptor {
	// Executors i and i+20 serve the same models: alternate backends over
	// that period, so that each model has both.
	backend, ctx := "ollama", uint32(8192)
	if (exec/20)%2 == 1 {
		backend, ctx = "vllm", 32768
	}
	return &pb.ModelDescriptor{
		ModelId:          benchModelID(model),
		BackendType:      backend,
		MaxContextLength: ctx,
		Features:         []string{"chat", "completion"},
		Architecture:     "llama",
		ModelSize:        "7B",
		Quantization:     "Q4_K_M",
		Pricing:          &pb.Pricing{InputTokenPriceWei: "1000000000", OutputTokenPriceWei: "2000000000"},
		Available:        true,
		Capacity:         4,
	}
}

// benchFixtures signs and opens one announcement and one heartbeat per
// executor, once per test binary: generating 10,000 keys and envelopes
// takes seconds.
func benchFixtures(tb testing.TB) *benchFixture {
	benchOnce.Do(func() {
		f := &benchFixture{
			anns: make([]*protocol.VerifiedAnnouncement, benchExecutors),
			hbs:  make([]*protocol.VerifiedHeartbeat, benchExecutors),
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range benchExecutors {
			x := newExec(tb)
			models := make([]*pb.ModelDescriptor, modelsPerExec)
			loads := make([]*pb.ModelLoad, modelsPerExec)
			for k := range models {
				models[k] = benchDesc(i, i*modelsPerExec+k)
				loads[k] = load(models[k].GetModelId(), rng.Uint32N(5), rng.Uint32N(3), 0)
			}
			f.anns[i] = x.announce(tb, 1, initial, models...)
			f.hbs[i] = x.heartbeat(tb, 1, 1, loads...)
		}
		benchFix = f
	})
	if benchFix == nil {
		tb.Fatal("fixtures failed in an earlier benchmark")
	}
	return benchFix
}

// filled returns a registry holding every fixture executor, seen at t0.
func filled(tb testing.TB, f *benchFixture) *Registry {
	tb.Helper()
	r := newTestRegistry(tb)
	for i := range f.anns {
		mustAnnounce(tb, r, f.anns[i], t0)
		mustHeartbeat(tb, r, f.hbs[i], t0)
	}
	return r
}

func BenchmarkApplyHeartbeat(b *testing.B) {
	f := benchFixtures(b)
	r := filled(b, f)
	// Own copies, whose seq the loop raises; the envelope stays the
	// fixture's, which the registry does not look into (hence the
	// internal applyHeartbeat, which takes what ApplyHeartbeat unwraps).
	hs := make([]*pb.Heartbeat, len(f.hbs))
	for i, s := range f.hbs {
		hs[i] = proto.Clone(s.Heartbeat()).(*pb.Heartbeat)
	}
	i := 0
	for b.Loop() {
		k := i % len(hs)
		hs[k].Seq = uint64(i) + 2
		if _, err := r.applyHeartbeat(hs[k], f.hbs[k].Raw(), t0.Add(time.Duration(i)*time.Microsecond)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkApplyAnnouncement(b *testing.B) {
	f := benchFixtures(b)
	r := filled(b, f)
	// Each executor alternates between its model set and one with a model
	// swapped, so that every announcement adds one and drops one.
	type pair struct {
		a    *pb.Announcement
		s    *protocol.VerifiedAnnouncement
		sets [2][]*pb.ModelDescriptor
	}
	ps := make([]pair, len(f.anns))
	for i, s := range f.anns {
		a := proto.Clone(s.Announcement()).(*pb.Announcement)
		alt := append([]*pb.ModelDescriptor(nil), a.Models[:modelsPerExec-1]...)
		alt = append(alt, benchDesc(i, i*modelsPerExec+modelsPerExec+7))
		ps[i] = pair{a: a, s: s, sets: [2][]*pb.ModelDescriptor{alt, a.Models}}
	}
	i := 0
	for b.Loop() {
		p := &ps[i%len(ps)]
		p.a.Seq = uint64(i) + 2
		p.a.Models = p.sets[(i/len(ps))%2]
		r.mu.Lock()
		_, err := r.applyLocked(p.s.Signer(), p.a, p.s.Raw(), t0.Add(time.Duration(i)*time.Microsecond))
		r.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkFindModel(b *testing.B) {
	r := filled(b, benchFixtures(b))
	qs := make([]*pb.QueryRequest, benchModels)
	for i := range qs {
		qs[i] = &pb.QueryRequest{
			Query:   &pb.QueryRequest_FindModel{FindModel: &pb.FindModelQuery{ModelId: benchModelID(i)}},
			Filters: &pb.QueryFilters{BackendType: "OLLAMA", MinContextLength: 4096},
			Limit:   20,
		}
	}
	now := t0.Add(10 * time.Second)
	i := 0
	for b.Loop() {
		resp := r.Query(qs[i%len(qs)], 20, now)
		if n := len(resp.GetExecutors().GetExecutors()); n != 20 {
			b.Fatalf("%d executors, want a page of 20", n)
		}
		i++
	}
}

func BenchmarkListModels(b *testing.B) {
	r := filled(b, benchFixtures(b))
	q := &pb.QueryRequest{Query: &pb.QueryRequest_ListModels{ListModels: &pb.ListModelsQuery{}}}
	now := t0.Add(10 * time.Second)
	var models, size int
	for b.Loop() {
		resp := r.Query(q, protocol.DefaultQueryLimit, now)
		models = len(resp.GetModels().GetModels())
		if models == 0 || resp.GetTotalCount() != benchModels {
			b.Fatalf("%d models of %d, want a page of 100", models, resp.GetTotalCount())
		}
	}
	size = proto.Size(r.Query(q, protocol.DefaultQueryLimit, now))
	b.ReportMetric(float64(models), "models/page")
	b.ReportMetric(float64(size), "bytes/page")
}

func BenchmarkSweep(b *testing.B) {
	r := filled(b, benchFixtures(b))
	now := t0.Add(10 * time.Second) // all live: the steady state
	for b.Loop() {
		if ev := r.Sweep(now); len(ev) != 0 {
			b.Fatalf("%d events, want none", len(ev))
		}
	}
}

// heapAfterGC returns the live heap.
func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// bytesPerExecutor fills a registry from copies of the fixtures' envelope
// bytes, decoded afresh as a validator would, and returns the growth of
// the live heap per executor: everything the registry keeps, envelopes
// included.
func bytesPerExecutor(tb testing.TB) float64 {
	f := benchFixtures(tb)
	anns := make([][]byte, len(f.anns))
	hbs := make([][]byte, len(f.hbs))
	for i := range f.anns {
		anns[i], hbs[i] = f.anns[i].Raw(), f.hbs[i].Raw()
	}
	r := newTestRegistry(tb)
	before := heapAfterGC()
	for i := range anns {
		a, err := protocol.OpenAnnouncement(bytes.Clone(anns[i]))
		if err != nil {
			tb.Fatal(err)
		}
		mustAnnounce(tb, r, a, t0)
		h, err := protocol.OpenHeartbeat(bytes.Clone(hbs[i]))
		if err != nil {
			tb.Fatal(err)
		}
		mustHeartbeat(tb, r, h, t0)
	}
	after := heapAfterGC()
	runtime.KeepAlive(r)
	runtime.KeepAlive(f)
	return float64(after-before) / float64(benchExecutors)
}

func BenchmarkBytesPerExecutor(b *testing.B) {
	per := bytesPerExecutor(b)
	for b.Loop() {
	}
	b.ReportMetric(per, "B/executor")
}
