package bench

import (
	"flag"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/protocol/pb"
)

// middle is the median of xs (the mean of the two middle ones).
func middle(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

var floodRate = flag.Int("floodrate", 100, "BenchmarkIngestUnderQueryFlood: the validator's --query-rate (0: no limit)")

// BenchmarkIngestUnderQueryFlood measures how many messages a validator
// holding 10,000 executors × 5 models (-full) accepts per second while one
// peer floods it with its most expensive queries, against the same without
// the flood, alternating the two in each iteration. The flood (a second
// generator process, eight queries in flight, each answered one asked
// again at once) asks for the model list and for whole pages of 1,000
// executors with their envelopes, at the validator's default query rate
// (-floodrate). Ingest is saturated as in BenchmarkIngest: fresh executors'
// announcements and heartbeats, 1,024 in flight.
//
//	go test -run '^$' -bench IngestUnderQueryFlood -benchtime 3x ./bench/ -args -full
func BenchmarkIngestUnderQueryFlood(b *testing.B) {
	c := &Counter{}
	v := startValidator(b, c, func(cfg *validator.Config) {
		cfg.Registry.MaxExecutors = 1 << 20 // each iteration adds fleets
		cfg.QueryRate = *floodRate
	})
	fill(b, v.Registry(), openedFleet(size(1000, 10000)), time.Now())
	g := startGenerator(b, v)
	g.Acknowledge(c.Done)
	f := startGenerator(b, v)

	var flood [][]byte
	for _, q := range []*pb.QueryRequest{
		{Query: &pb.QueryRequest_ListModels{ListModels: &pb.ListModelsQuery{}}, Limit: 1000},
		{Query: &pb.QueryRequest_FindModel{FindModel: &pb.FindModelQuery{ModelId: ModelID(1)}}, Limit: 1000},
		{Query: &pb.QueryRequest_FindModel{FindModel: &pb.FindModelQuery{ModelId: ModelID(2)}}, Limit: 1000, Filters: &pb.QueryFilters{IncludeStale: true}},
	} {
		m, err := proto.Marshal(q)
		if err != nil {
			b.Fatal(err)
		}
		flood = append(flood, m)
	}

	// The flood alone: what it costs the validator, in cores.
	wait, err := f.Start(Request{Op: "flood", Queries: flood, Concurrency: 8})
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(time.Second) // past the burst
	m := StartCPU()
	time.Sleep(3 * time.Second)
	floodCPU, floodWall := m.Stop()
	if err := f.Stop(); err != nil {
		b.Fatal(err)
	}
	alone, err := wait()
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("the flood alone for %s: the validator busy %.3f cores; %d answered, %d refused (%d bytes per answer)",
		(floodWall + time.Second).Round(time.Millisecond), floodCPU.Seconds()/floodWall.Seconds(), alone.Messages, alone.Limited, alone.Bytes)
	b.ReportMetric(floodCPU.Seconds()/floodWall.Seconds(), "flood-validator-cores")

	executors := size(500, 5000)
	var (
		rate         [2][]float64 // accepted per second: without, with the flood
		perCPU       [2][]float64
		answered     []float64 // flood queries answered per second
		limited      []float64
		floodBytes   int
		seed         = uint64(5000)
		accepted, in uint64
	)
	for b.Loop() {
		for _, withFlood := range []int{0, 1} {
			b.StopTimer()
			seed++
			if _, err := g.Do(Request{Op: "prepare", Executors: executors, Seed: seed, Rounds: 1}); err != nil {
				b.Fatal(err)
			}
			var wait func() (Reply, error)
			if withFlood == 1 {
				var err error
				if wait, err = f.Start(Request{Op: "flood", Queries: flood, Concurrency: 8}); err != nil {
					b.Fatal(err)
				}
				time.Sleep(300 * time.Millisecond) // the flood at full strength first
			}
			before, base := stats(v), c.Done()
			b.StartTimer()

			m := StartCPU()
			rep, err := g.Do(Request{Op: "publish", Window: 1024})
			if err != nil {
				b.Fatal(err)
			}
			target := base + uint64(rep.Messages)
			deadline := time.Now().Add(60 * time.Second)
			for c.Done() < target && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			cpu, wall := m.Stop()

			b.StopTimer()
			got := stats(v) - before
			accepted += got
			in += uint64(rep.Messages)
			rate[withFlood] = append(rate[withFlood], float64(got)/wall.Seconds())
			perCPU[withFlood] = append(perCPU[withFlood], float64(got)/cpu.Seconds())
			if wait != nil {
				if err := f.Stop(); err != nil {
					b.Fatal(err)
				}
				fr, err := wait()
				if err != nil {
					b.Fatal(err)
				}
				// The flood ran for the ingest's wall time plus the
				// lead-in; per second of ingest is close enough.
				secs := wall.Seconds() + 0.3
				answered = append(answered, float64(fr.Messages)/secs)
				limited = append(limited, float64(fr.Limited)/secs)
				floodBytes = fr.Bytes
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	// Other tenants make single runs vary by tens of percent, so the
	// figure is the median of the ratios of adjacent runs.
	var pairs []float64
	for i := range rate[1] {
		pairs = append(pairs, rate[1][i]/rate[0][i])
	}
	without, with := middle(rate[0]), middle(rate[1])
	b.ReportMetric(without, "accepted/s")
	b.ReportMetric(with, "flood-accepted/s")
	b.ReportMetric(middle(pairs), "flood-ratio")
	b.ReportMetric(middle(perCPU[0]), "accepted/cpu-s")
	b.ReportMetric(middle(perCPU[1]), "flood-accepted/cpu-s")
	b.ReportMetric(mean(answered), "flood-answered/s")
	b.ReportMetric(mean(limited), "flood-4290/s")
	b.Logf("query rate %d: ingest median %.0f/s without a flood, %.0f/s with one; ratios of adjacent runs %.2f (median %.2f); per validator CPU-second %.0f and %.0f",
		*floodRate, without, with, pairs, middle(pairs), middle(perCPU[0]), middle(perCPU[1]))
	b.Logf("flood: %.0f queries answered per second (%d bytes each on average), %.0f refused with 4290", mean(answered), floodBytes, mean(limited))
	if accepted != in {
		b.Logf("WARNING: %d of %d messages were not accepted", in-accepted, in)
	}
}
