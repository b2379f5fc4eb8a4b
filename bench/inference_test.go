package bench

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/node/executor"
	"github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/pkg/backend"
	"github.com/lloom/lloom/pkg/backend/backendtest"
	"github.com/lloom/lloom/protocol/pb"
)

// benchModel is the model every in-process inference benchmark serves.
const benchModel = "bench-m"

// inferenceNet is one validator and one executor in this process, serving
// benchModel from a backend, and a client whose connection to the executor
// is open and whose candidates are known.
type inferenceNet struct {
	v     *validator.Validator
	c     *client.Client
	order []*client.Executor
}

// startInference starts the network in front of the backend at url. The
// executor's per-peer request rate limit is off: one client sends every
// request of the benchmark.
func startInference(b *testing.B, url, model string, capacity uint32) *inferenceNet {
	b.Helper()
	v := startValidator(b, nil, nil)
	nodetest.StartExecutor(b, []*validator.Validator{v}, []*pb.ModelDescriptor{nodetest.Model(model, capacity)}, func(cfg *executor.Config) {
		cfg.Backend.URL = url
		cfg.InferenceRate = 0
		cfg.HeartbeatInterval = executor.DefaultConfig().HeartbeatInterval
	})
	n := &inferenceNet{v: v, c: nodetest.NewClient(b, v)}
	n.order = findOrder(b, n.c, model)
	return n
}

// findOrder asks the validators once for model's executors, as Infer
// does, and returns them in the order Infer would try them.
func findOrder(b *testing.B, c *client.Client, model string) []*client.Executor {
	b.Helper()
	waitVisible(b, c, model, true)
	found, err := c.FindModel(context.Background(), model, nil)
	if err != nil {
		b.Fatal(err)
	}
	_, order := client.Choose(found.Executors, nil)
	if len(order) == 0 {
		b.Fatalf("no usable executor for %s among %d", model, len(found.Executors))
	}
	return order
}

// newBackendClient is pkg/backend's client with its default HTTP client,
// as an executor builds it.
func newBackendClient(b *testing.B, url string) *backend.Client {
	b.Helper()
	bc, err := backend.New(url, "", nil)
	if err != nil {
		b.Fatal(err)
	}
	return bc
}

// BenchmarkInferenceTTFT measures the time to first token lloom adds to a
// backend that answers at once (the in-process fake, no delays, 8-token
// answers). Each iteration takes three samples back to back, so that the
// machine's other load disturbs all three alike:
//
//   - direct: pkg/backend's client streaming from the fake, time to first
//     delta (the HTTP connection kept alive, as an executor's is);
//   - warm: client.InferOn to the executor found once, its connection
//     open, time from the call to the first chunk;
//   - cold: a new client (its host built before the clock starts), then
//     client.Infer: validator connection and query, envelope
//     verification, choice, dial of the executor, request, first chunk.
//
// The added time is the difference of quantiles (warm p50 − direct p50,
// and so on), not a distribution of differences.
func BenchmarkInferenceTTFT(b *testing.B) {
	fake := backendtest.New(b, backendtest.WithModels(benchModel))
	n := startInference(b, fake.URL(), benchModel, 8)
	bc := newBackendClient(b, fake.URL())
	creq, breq := chatRequest(benchModel, 0)
	ctx := context.Background()

	// Warm both paths: keep-alive HTTP connection, libp2p connection.
	if _, err := Direct(ctx, bc, breq); err != nil {
		b.Fatal(err)
	}
	if _, _, err := Through(ctx, n.c, n.order, creq); err != nil {
		b.Fatal(err)
	}

	direct, warm, cold := Dist{Name: "direct"}, Dist{Name: "warm"}, Dist{Name: "cold"}
	for b.Loop() {
		s, err := Direct(ctx, bc, breq)
		if err != nil {
			b.Fatal(err)
		}
		direct.Add(s.TTFT)

		s, ans, err := Through(ctx, n.c, n.order, creq)
		if err != nil {
			b.Fatalf("warm: %v (attempts %+v)", err, ans.Attempts)
		}
		warm.Add(s.TTFT)

		c := nodetest.NewClient(b, n.v)
		s, ans, err = Cold(ctx, c, creq)
		if err != nil {
			b.Fatalf("cold: %v (attempts %+v)", err, ans.Attempts)
		}
		cold.Add(s.TTFT)
		c.Close()
	}
	direct.Report(b, "ms")
	warm.Report(b, "ms")
	cold.Report(b, "ms")
	for _, q := range []struct {
		tag string
		q   float64
	}{{"p50", .5}, {"p99", .99}} {
		d := direct.Quantile(q.q)
		b.ReportMetric(float64(warm.Quantile(q.q)-d)/1e6, "warm-added-"+q.tag+"-ms")
		b.ReportMetric(float64(cold.Quantile(q.q)-d)/1e6, "cold-added-"+q.tag+"-ms")
	}
}

// BenchmarkInferenceThroughput measures streaming throughput for
// 1,000-token answers from the fake (no delays), through lloom's warm path
// and directly, alternately. Tokens per second is 1,000 over the time from
// the call to the end of the answer (receipt verified, for lloom). A third
// reader, plain net/http with no JSON decoding, shows how fast the fake
// itself serves. CPU per token is this process's (fake, executor, client
// and all) during each kind of answer. "first-at" is when the first token arrived, as a fraction
// of the whole answer's time: near 0 for a stream that is incremental.
func BenchmarkInferenceThroughput(b *testing.B) {
	const tokens = 1000
	fake := backendtest.New(b, backendtest.WithModels(benchModel))
	n := startInference(b, fake.URL(), benchModel, 8)
	bc := newBackendClient(b, fake.URL())
	hc := &http.Client{}
	creq, breq := chatRequest(benchModel, tokens)
	ctx := context.Background()
	if _, err := Direct(ctx, bc, breq); err != nil {
		b.Fatal(err)
	}
	if _, _, err := Through(ctx, n.c, n.order, creq); err != nil {
		b.Fatal(err)
	}

	direct, lloom, raw := Dist{Name: "direct"}, Dist{Name: "lloom"}, Dist{Name: "raw-http"}
	var directFirst, lloomFirst []float64
	var directCPU, lloomCPU time.Duration // this process's, fake included
	for b.Loop() {
		s, err := RawHTTP(ctx, hc, fake.URL(), benchModel, tokens)
		if err != nil {
			b.Fatal(err)
		}
		raw.Add(s.Total)

		cpu := CPUTime()
		s, err = Direct(ctx, bc, breq)
		directCPU += CPUTime() - cpu
		if err != nil {
			b.Fatal(err)
		}
		if s.Pieces != tokens {
			b.Fatalf("direct: %d deltas, want %d", s.Pieces, tokens)
		}
		direct.Add(s.Total)
		directFirst = append(directFirst, Ratio(float64(s.TTFT), float64(s.Total)))

		cpu = CPUTime()
		s, ans, err := Through(ctx, n.c, n.order, creq)
		lloomCPU += CPUTime() - cpu
		if err != nil {
			b.Fatalf("lloom: %v (attempts %+v)", err, ans.Attempts)
		}
		if got := ans.Usage.GetCompletionTokens(); got != tokens {
			b.Fatalf("lloom: %d completion tokens, want %d", got, tokens)
		}
		lloom.Add(s.Total)
		lloomFirst = append(lloomFirst, Ratio(float64(s.TTFT), float64(s.Total)))
	}
	raw.Report(b, "ms")
	direct.Report(b, "ms")
	lloom.Report(b, "ms")
	dt, lt := perSecond(tokens, direct.Quantile(.5)), perSecond(tokens, lloom.Quantile(.5))
	b.ReportMetric(perSecond(tokens, raw.Quantile(.5)), "raw-http-tok/s")
	b.ReportMetric(dt, "direct-tok/s")
	b.ReportMetric(lt, "lloom-tok/s")
	b.ReportMetric(Ratio(lt, dt), "lloom/direct")
	perToken := func(d time.Duration) float64 { return float64(d) / 1e3 / float64(tokens*b.N) }
	b.ReportMetric(perToken(directCPU), "direct-cpu-us/token")
	b.ReportMetric(perToken(lloomCPU), "lloom-cpu-us/token")
	b.ReportMetric(median(directFirst), "direct-first-at")
	b.ReportMetric(median(lloomFirst), "lloom-first-at")
	b.Logf("tokens/s at p50: raw http %.0f, direct %.0f, lloom %.0f (ratio %.3f); first token at %.2f (direct) and %.2f (lloom) of the answer's time",
		perSecond(tokens, raw.Quantile(.5)), dt, lt, Ratio(lt, dt), median(directFirst), median(lloomFirst))
}

// median of xs (the upper one of an even count), 0 when empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	slices.Sort(s)
	return s[len(s)/2]
}
