package bench

import (
	"context"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lloom/lloom/test/llm/ollamatest"
)

// BenchmarkInferenceOllama compares lloom's warm path with calling a real
// engine directly: Ollama v0.6.5 serving the generated test model
// (test/llm/ollamatest), one thread. Each iteration asks for the same
// answer (same seed) both ways, in turns: direct with pkg/backend's
// client, then through an in-process validator and executor with
// client.InferOn. Reported: time to first token each way, tokens per second
// over the whole answer, the decode rate after the first token, and the CPU
// time per token of this process (Ollama's own is in its processes): the
// backend client alone when direct, executor and client through lloom.
//
// It needs LLOOM_OLLAMA_BIN (scripts/ollama-test-engine.sh build prints
// it). Without it the benchmark skips when run among all the others
// (-bench ., as CI's smoke run does), and fails when it was asked for by
// name, since then its silence would pass for a result.
func BenchmarkInferenceOllama(b *testing.B) {
	if os.Getenv(ollamatest.BinEnv) == "" {
		msg := ollamatest.BinEnv + " is not set: this benchmark needs a real Ollama v0.6.5; run " +
			ollamatest.BinEnv + "=$(scripts/ollama-test-engine.sh build) go test -run '^$' -bench InferenceOllama ./bench/ " +
			"(the first build takes about 4 minutes)"
		if namedOllama() {
			b.Fatal(msg)
		}
		b.Skip(msg)
	}
	tokens := size(uint32(50), uint32(1000))
	eng := ollamatest.Start(b)
	n := startInference(b, eng.URL(), eng.Model(), 4)
	bc := newBackendClient(b, eng.URL())
	creq, breq := chatRequest(eng.Model(), tokens)
	ctx := context.Background()
	if _, err := Direct(ctx, bc, breq); err != nil {
		b.Fatal(err)
	}
	if _, _, err := Through(ctx, n.c, n.order, creq); err != nil {
		b.Fatal(err)
	}

	dTTFT, lTTFT := Dist{Name: "direct-ttft"}, Dist{Name: "lloom-ttft"}
	dTotal, lTotal := Dist{Name: "direct-answer"}, Dist{Name: "lloom-answer"}
	var dDecode, lDecode []float64
	var dCPU, lCPU time.Duration // this process's: pkg/backend's client; executor and client
	seed := int64(0)
	for b.Loop() {
		seed++
		creq.Seed, breq.Seed = &seed, &seed
		cpu := CPUTime()
		d, err := Direct(ctx, bc, breq)
		dCPU += CPUTime() - cpu
		if err != nil {
			b.Fatal(err)
		}
		cpu = CPUTime()
		l, ans, err := Through(ctx, n.c, n.order, creq)
		lCPU += CPUTime() - cpu
		if err != nil {
			b.Fatalf("lloom: %v (attempts %+v)", err, ans.Attempts)
		}
		if got := ans.Usage.GetCompletionTokens(); got != tokens {
			b.Fatalf("lloom: %d completion tokens, want %d (the test model always runs to max_tokens)", got, tokens)
		}
		dTTFT.Add(d.TTFT)
		lTTFT.Add(l.TTFT)
		dTotal.Add(d.Total)
		lTotal.Add(l.Total)
		dDecode = append(dDecode, perSecond(d.Pieces-1, d.Total-d.TTFT))
		lDecode = append(lDecode, perSecond(l.Pieces-1, l.Total-l.TTFT))
	}
	dTTFT.Report(b, "ms")
	lTTFT.Report(b, "ms")
	dTotal.Report(b, "ms")
	lTotal.Report(b, "ms")
	b.ReportMetric(float64(lTTFT.Quantile(.5)-dTTFT.Quantile(.5))/1e6, "added-ttft-p50-ms")
	dt, lt := perSecond(int(tokens), dTotal.Quantile(.5)), perSecond(int(tokens), lTotal.Quantile(.5))
	b.ReportMetric(dt, "direct-tok/s")
	b.ReportMetric(lt, "lloom-tok/s")
	b.ReportMetric(Ratio(lt, dt), "lloom/direct")
	b.ReportMetric(median(dDecode), "direct-decode-tok/s")
	b.ReportMetric(median(lDecode), "lloom-decode-tok/s")
	b.ReportMetric(Ratio(median(lDecode), median(dDecode)), "decode-lloom/direct")
	perToken := func(d time.Duration) float64 { return float64(d) / 1e3 / float64(int(tokens)*b.N) }
	b.ReportMetric(perToken(dCPU), "direct-cpu-us/token")
	b.ReportMetric(perToken(lCPU), "lloom-cpu-us/token")
	b.Logf("%d-token answers: %.1f tokens/s direct, %.1f through lloom (ratio %.3f); decode %.1f / %.1f tokens/s",
		tokens, dt, lt, Ratio(lt, dt), median(dDecode), median(lDecode))
}

// namedOllama reports whether the -test.bench pattern names this benchmark
// rather than matching everything.
func namedOllama() bool {
	f := flag.Lookup("test.bench")
	return f != nil && strings.Contains(f.Value.String(), "Ollama")
}
