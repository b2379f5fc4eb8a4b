package bench

import (
	"flag"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

var netLog = flag.String("netlog", "", "gateway benchmarks: write the network process's debug log (validator, executors) to this file")

// rateTokens is the length of the rate benchmark's short answers.
const rateTokens = 8

// startNet starts the network process (validator, executors, fake backend
// and HTTP clients) for a gateway in this process.
func startNet(b *testing.B, s NetSetup) *NetProcess {
	b.Helper()
	s.LogFile = *netLog
	x, err := StartNetProcess(s)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { x.Close() })
	return x
}

// do is x.Do, failing the benchmark on an error.
func do(b *testing.B, x *NetProcess, op NetOp) NetReply {
	b.Helper()
	r, err := x.Do(op)
	if err != nil {
		b.Fatalf("%s: %v", op.Op, err)
	}
	return r
}

// BenchmarkGatewayRate measures the requests per second one gateway
// serves with a fast backend (the fake with no delays, 8-token answers),
// not streamed and streamed, from a number of HTTP clients that each send
// their next request as soon as the last is answered. The gateway runs in
// this process alone; the validator, the executor (capacity 512, queue
// 512), the fake and the HTTP clients run in a child process (the test
// binary run again as TestGatewayNetProcess), so that this process's CPU
// time is the gateway's (its libp2p client host included) and the
// child's is everything else's. Each iteration is one round of requests.
func BenchmarkGatewayRate(b *testing.B) {
	x := startNet(b, NetSetup{Executors: 1, Capacity: 512, Queue: 512})
	url := startGateway(b, x.Validator)
	for _, stream := range []bool{false, true} {
		for _, clients := range size([]int{8}, []int{16, 64, 256}) {
			b.Run(fmt.Sprintf("stream=%t/clients=%d", stream, clients), func(b *testing.B) { benchRate(b, x, url, stream, clients) })
		}
	}
}

func benchRate(b *testing.B, x *NetProcess, url string, stream bool, clients int) {
	requests := size(40, 3000)
	op := NetOp{Op: "load", URL: url, Body: ChatBody(benchModel, rateTokens, stream), Stream: stream, Clients: clients, Requests: 2 * clients}
	do(b, x, op) // one connection per client, opened before the clock
	op.Requests = requests
	var rps, gwCPU, netCPU, cores []float64
	total, ttft := Dist{Name: "answer"}, Dist{Name: "first-token"}
	failed := 0
	failures := map[string]int{}
	for b.Loop() {
		before := do(b, x, NetOp{Op: "cpu"})
		pc := StartCPU()
		r := do(b, x, op)
		cpu, wall := pc.Stop()
		failed += r.Load.Failed
		for k, n := range r.Load.Failures {
			failures[k] += n
		}
		for i := range r.Load.Total {
			total.Add(r.Load.Total[i])
			ttft.Add(r.Load.TTFT[i])
		}
		rps = append(rps, perSecond(r.Load.OK, r.Load.Wall))
		gwCPU = append(gwCPU, float64(cpu)/1e3/float64(requests))
		netCPU = append(netCPU, float64(r.CPU-before.CPU)/1e3/float64(requests))
		cores = append(cores, Ratio(float64(cpu), float64(wall)))
		b.Logf("round: %d answered, %d failed in %s (%.0f/s); gateway CPU %s (%.2f cores), network process %s",
			r.Load.OK, r.Load.Failed, r.Load.Wall.Round(time.Millisecond), rps[len(rps)-1], cpu.Round(time.Millisecond), cores[len(cores)-1], (r.CPU - before.CPU).Round(time.Millisecond))
	}
	total.Report(b, "ms")
	if stream {
		ttft.Report(b, "ms")
	}
	b.ReportMetric(median(rps), "req/s")
	b.ReportMetric(median(gwCPU), "gateway-cpu-us/req")
	b.ReportMetric(median(netCPU), "others-cpu-us/req")
	b.ReportMetric(median(cores), "gateway-cores")
	b.ReportMetric(float64(failed), "failed")
	reportFailures(b, failed, requests*b.N, failures)
}

// BenchmarkGatewayStreams measures what one gateway spends per open
// stream: n streams at once from the child's HTTP clients, each on its own
// connection, to one executor (capacity n, queue 0) whose fake backend
// waits between tokens. The gateway runs in this process alone (see
// BenchmarkGatewayRate). Each iteration is one round: the child closes
// its idle connections and this process reads its heap (idle); the fake
// holds every request before its first token until all n are at the
// backend (waiting: the gateway holds n requests with no answer yet);
// then releases them, and once every stream has had its first content,
// the heap is read again (streaming: n SSE answers open); then all
// answers run to their end. Heaps are live heaps after two collections;
// their CPU is left out of the gateway's.
func BenchmarkGatewayStreams(b *testing.B) {
	for _, n := range size([]int{20}, []int{500, 1000}) {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) { benchStreams(b, n) })
	}
}

// gatewayMem is this process's memory with what ReadMemory leaves out.
type gatewayMem struct {
	Memory
	Stack, Alloc uint64
	Goroutines   int
}

// readGatewayMem reads this process's memory, adding the CPU it takes to
// *spent.
func readGatewayMem(spent *time.Duration) gatewayMem {
	before := CPUTime()
	m := gatewayMem{Memory: ReadMemory(), Goroutines: runtime.NumGoroutine()}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.Stack, m.Alloc = ms.StackInuse, ms.TotalAlloc
	*spent += CPUTime() - before
	return m
}

func benchStreams(b *testing.B, n int) {
	tokens, gap := size(10, 30), size(10*time.Millisecond, 100*time.Millisecond)
	x := startNet(b, NetSetup{Executors: 1, Capacity: uint32(n), Queue: 0, Gap: gap})
	url := startGateway(b, x.Validator)
	body := ChatBody(benchModel, tokens, true)

	per := func(a, c uint64) float64 { return (float64(a) - float64(c)) / float64(n) }
	var waitingHeap, streamingHeap, stack, rss, alloc, goroutines, gwCPU, netCPU []float64
	ttft, end := Dist{Name: "first-token"}, Dist{Name: "end"}
	failed := 0
	failures := map[string]int{}
	for b.Loop() {
		do(b, x, NetOp{Op: "idle"})
		time.Sleep(100 * time.Millisecond) // the server's side of the closed connections ends
		var spent time.Duration
		idle := readGatewayMem(&spent)
		before := do(b, x, NetOp{Op: "cpu"})
		pc := StartCPU()
		h := do(b, x, NetOp{Op: "hold", URL: url, Body: body, Streams: n})
		waiting := readGatewayMem(&spent)
		r := do(b, x, NetOp{Op: "release"})
		streaming := readGatewayMem(&spent)
		f := do(b, x, NetOp{Op: "finish"})
		cpu, _ := pc.Stop()
		cpu -= spent
		failed += f.Load.Failed
		for k, c := range f.Load.Failures {
			failures[k] += c
		}
		for i := range f.Load.TTFT {
			ttft.Add(f.Load.TTFT[i])
		}
		for _, d := range f.Load.Total {
			end.Add(d)
		}
		b.Logf("round: %d held at the backend, %d streaming; gateway heap %.1f MiB idle, %.1f waiting, %.1f streaming (stacks %.1f MiB, RSS %.1f MiB idle, %.1f streaming, %d goroutines); gateway CPU %s, network process %s",
			h.Active, r.Started, MiB(idle.HeapAlloc), MiB(waiting.HeapAlloc), MiB(streaming.HeapAlloc), MiB(streaming.Stack), MiB(idle.RSS), MiB(streaming.RSS), streaming.Goroutines,
			cpu.Round(time.Millisecond), (f.CPU - before.CPU).Round(time.Millisecond))
		waitingHeap = append(waitingHeap, per(waiting.HeapAlloc, idle.HeapAlloc))
		streamingHeap = append(streamingHeap, per(streaming.HeapAlloc, idle.HeapAlloc))
		stack = append(stack, per(streaming.Stack, idle.Stack))
		rss = append(rss, MiB(streaming.RSS))                   // the heap the runtime keeps between rounds blurs a difference
		alloc = append(alloc, per(streaming.Alloc, idle.Alloc)) // up to mid-answer
		goroutines = append(goroutines, float64(streaming.Goroutines-idle.Goroutines)/float64(n))
		gwCPU = append(gwCPU, float64(cpu)/1e3/float64(n))
		netCPU = append(netCPU, float64(f.CPU-before.CPU)/1e3/float64(n))
	}
	ttft.Report(b, "ms")
	end.Report(b, "ms")
	b.ReportMetric(median(waitingHeap), "gateway-heap-B/stream-waiting")
	b.ReportMetric(median(streamingHeap), "gateway-heap-B/stream-streaming")
	b.ReportMetric(median(stack), "gateway-stack-B/stream")
	b.ReportMetric(median(rss), "gateway-rss-MiB-streaming")
	b.ReportMetric(median(alloc), "gateway-alloc-B/stream")
	b.ReportMetric(median(goroutines), "gateway-goroutines/stream")
	b.ReportMetric(median(gwCPU), "gateway-cpu-us/stream")
	b.ReportMetric(median(gwCPU)/float64(tokens), "gateway-cpu-us/token")
	b.ReportMetric(median(netCPU), "others-cpu-us/stream")
	b.ReportMetric(float64(failed), "failed")
	reportFailures(b, failed, n*b.N, failures)
}

// reportFailures fails the benchmark with a tally of its failed requests.
func reportFailures(b *testing.B, failed, of int, failures map[string]int) {
	if failed == 0 {
		return
	}
	var msgs []string
	for m, c := range failures {
		msgs = append(msgs, fmt.Sprintf("%d× %s", c, m))
	}
	sort.Strings(msgs)
	b.Errorf("%d of %d requests failed: %s", failed, of, strings.Join(msgs, "; "))
}
