package bench

import (
	"context"
	"flag"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/pkg/backend/backendtest"
)

var executorProfile = flag.String("executorprofile", "", "BenchmarkInferenceConcurrent: write the executor process's CPU profile to this file")

// Concurrent streams: each answer is concurrentTokens tokens with
// concurrentGap between them (a model writing 20 tokens per second), so
// that every stream is open for about a second and all of them overlap.
const (
	concurrentTokens = 20
	concurrentGap    = 50 * time.Millisecond
)

// BenchmarkInferenceConcurrent measures one executor serving 500
// concurrent streams (capacity 500, queue 0) from the fake backend. The
// executor runs in a child process, so that its CPU time and heap are
// its own; the validator, the fake and the clients run in this process.
// Each iteration is one round: the fake holds every request before its
// first token (Block) until all 500 are running at the executor, then
// lets them stream. The executor's live heap is read twice per round,
// with every stream open: while all wait for their first token, and in
// the middle of the answers.
//
// The clients are separate hosts, each with its own connection, and
// share the streams out evenly (clients=1: one host holds all 500).
func BenchmarkInferenceConcurrent(b *testing.B) {
	for _, clients := range []int{1, 4} {
		b.Run(fmt.Sprintf("streams=500/clients=%d", clients), func(b *testing.B) { benchConcurrent(b, 500, clients) })
	}
}

func benchConcurrent(b *testing.B, streams, clients int) {
	fake := backendtest.New(b, backendtest.WithModels(benchModel), backendtest.WithDelay(0, concurrentGap))
	v := startValidator(b, nil, nil)
	x, err := StartExecutorProcess(ExecutorSetup{Validator: v.Addrs()[0], BackendURL: fake.URL(), Model: benchModel,
		Capacity: uint32(streams), Queue: 0, CPUProfile: *executorProfile})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { x.Close() })

	creq, _ := chatRequest(benchModel, concurrentTokens)
	cs := make([]*client.Client, clients)
	var order []*client.Executor
	for i := range cs {
		cs[i] = nodetest.NewClient(b, v)
		if i == 0 {
			order = findOrder(b, cs[0], benchModel)
		}
		// Open each client's connection and warm the executor's backend client.
		if _, ans, err := Through(context.Background(), cs[i], order, creq); err != nil {
			b.Fatalf("warm-up: %v (attempts %+v)", err, ans.Attempts)
		}
	}

	idle, err := x.Memory()
	if err != nil {
		b.Fatal(err)
	}
	// Per round and per stream: the executor's CPU time (µs) and bytes
	// allocated, its live heap with every stream waiting and streaming, and
	// this process's CPU time (validator, fake, clients; µs).
	var cpu, others, alloc, waitingHeap, streamingHeap, streamingStack, streamingRSS, roundMs []float64
	// Times from the fake's release of the held requests to each stream's
	// first token and to its end.
	ttft, total := Dist{Name: "first-token"}, Dist{Name: "end"}
	failed, goroutines := 0, 0
	codes := map[string]int{}
	for b.Loop() {
		start, err := x.CPU()
		if err != nil {
			b.Fatal(err)
		}
		pcpu := StartCPU()
		release := fake.Block()
		results := make(chan result, streams)
		var wg sync.WaitGroup
		for i := range streams {
			wg.Go(func() {
				s, _, err := Through(context.Background(), cs[i%clients], order, creq)
				results <- result{s, err}
			})
		}
		// Every stream is at the backend, or has failed.
		deadline := time.Now().Add(pollTimeout)
		for fake.Active() < streams && len(results) == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		held := fake.Active()
		waiting, err := x.Memory()
		if err != nil {
			b.Fatal(err)
		}
		goroutines = max(goroutines, waiting.Goroutines)
		release()
		released := time.Now()
		time.Sleep(concurrentTokens * concurrentGap / 2)
		open := fake.Active()
		mid, err := x.Memory()
		if err != nil {
			b.Fatal(err)
		}
		wg.Wait()
		end, err := x.CPU()
		if err != nil {
			b.Fatal(err)
		}
		pc, pw := pcpu.Stop()
		close(results)
		for r := range results {
			if r.err != nil {
				failed++
				codes[errorKind(r.err)]++
				continue
			}
			ttft.Add(r.s.Start.Add(r.s.TTFT).Sub(released))
			total.Add(r.s.Start.Add(r.s.Total).Sub(released))
		}
		b.Logf("round: %d streams held at the backend, %d open mid-answer; executor heap %0.1f MiB idle, %0.1f waiting, %0.1f streaming (stacks %0.1f MiB, RSS %0.1f MiB); executor CPU %s, this process %s, wall %s",
			held, open, MiB(idle.Memory.HeapAlloc), MiB(waiting.Memory.HeapAlloc), MiB(mid.Memory.HeapAlloc), MiB(mid.StackInuse), MiB(mid.Memory.RSS), end.CPU-start.CPU, pc, pw)
		n := float64(streams)
		cpu = append(cpu, float64(end.CPU-start.CPU)/1e3/n)
		others = append(others, float64(pc)/1e3/n)
		alloc = append(alloc, float64(end.TotalAlloc-start.TotalAlloc)/n)
		waitingHeap = append(waitingHeap, (float64(waiting.Memory.HeapAlloc)-float64(idle.Memory.HeapAlloc))/n)
		streamingHeap = append(streamingHeap, (float64(mid.Memory.HeapAlloc)-float64(idle.Memory.HeapAlloc))/n)
		streamingStack = append(streamingStack, (float64(mid.StackInuse)-float64(idle.StackInuse))/n)
		streamingRSS = append(streamingRSS, (float64(mid.Memory.RSS)-float64(idle.Memory.RSS))/n)
		roundMs = append(roundMs, float64(pw)/1e6)
	}
	ttft.Report(b, "ms")
	total.Report(b, "ms")
	b.ReportMetric(float64(failed), "failed")
	b.ReportMetric(median(cpu), "executor-cpu-us/stream")
	b.ReportMetric(median(others), "others-cpu-us/stream")
	b.ReportMetric(median(waitingHeap), "executor-heap-B/stream-waiting")
	b.ReportMetric(median(streamingHeap), "executor-heap-B/stream-streaming")
	b.ReportMetric(median(streamingStack), "executor-stack-B/stream-streaming")
	b.ReportMetric(median(streamingRSS), "executor-rss-B/stream-streaming")
	b.ReportMetric(median(alloc), "executor-alloc-B/stream")
	b.ReportMetric(median(roundMs), "round-ms")
	b.ReportMetric(float64(goroutines), "executor-goroutines")
	if failed > 0 {
		var msgs []string
		for m, n := range codes {
			msgs = append(msgs, fmt.Sprintf("%d× %s", n, m))
		}
		sort.Strings(msgs)
		b.Errorf("%d of %d streams failed: %s", failed, streams*b.N, strings.Join(msgs, "; "))
	}
}

type result struct {
	s   Stream
	err error
}

// peerIDs matches the peer ids in an error's text.
var peerIDs = regexp.MustCompile(`12D3Koo[1-9A-HJ-NP-Za-km-z]+`)

// errorKind is an error's text without peer ids, so that equal failures
// from different peers count together.
func errorKind(err error) string { return peerIDs.ReplaceAllString(err.Error(), "<peer>") }
