package bench

import (
	"context"
	"testing"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/node/gateway"
	"github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/pkg/backend/backendtest"
)

// gatewayTokens is the length of the TTFT benchmark's answers: the fake's
// default answer, asked for explicitly so that every path asks alike.
const gatewayTokens = 8

// gatewayMaxConcurrent replaces the gateway's default bound of 256
// requests in flight, so that the benchmarks measure the gateway rather
// than its setting.
const gatewayMaxConcurrent = 4096

// startGateway runs a gateway of the validator at addr (full multiaddr) in
// this process, on a free loopback port, and returns its base URL (ending
// in /v1) once it has answered a request for benchModel.
func startGateway(b *testing.B, addr string) string {
	b.Helper()
	boot, err := node.ParseBootstrapPeers(addr)
	if err != nil {
		b.Fatal(err)
	}
	cfg := gateway.DefaultConfig()
	cfg.Client.Validators = boot
	cfg.Listen = "127.0.0.1:0"
	cfg.MaxConcurrent = gatewayMaxConcurrent
	g, err := gateway.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := g.Listen(); err != nil {
		g.Close()
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("gateway: %v", err)
		}
		g.Close()
	})
	url := "http://" + g.Addr() + "/v1"
	hc := NewHTTPClient(1)
	defer hc.CloseIdleConnections()
	nodetest.Eventually(b, "the gateway answers", func() error {
		_, err := HTTPAnswer(ctx, hc, url, ChatBody(benchModel, 1, false), false, nil)
		return err
	})
	return url
}

// BenchmarkGatewayTTFT measures the time to first token the gateway adds,
// on the network of BenchmarkInferenceTTFT (in-process fake with no
// delays, one validator, one executor, all in this process, 8-token
// answers). Each iteration takes five samples back to back, so that the
// machine's other load disturbs them alike:
//
//   - direct: pkg/backend's client streaming from the fake (kept-alive
//     connection), time to the first delta;
//   - raw: the fake read by HTTPAnswer (net/http and a line reader), the
//     same reader as the gateway's sample;
//   - warm: client.InferOn to the executor found once, connection open;
//   - infer: client.Infer on the same client (find-model on every call);
//   - gateway: a streamed chat request to the gateway over a kept-alive
//     HTTP connection, time to the first SSE event with content.
//
// The added times are differences of quantiles. DESIGN §9's target is
// gateway − direct ≤ 1 ms at p50.
func BenchmarkGatewayTTFT(b *testing.B) {
	fake := backendtest.New(b, backendtest.WithModels(benchModel))
	n := startInference(b, fake.URL(), benchModel, 8)
	url := startGateway(b, n.v.Addrs()[0])
	bc := newBackendClient(b, fake.URL())
	hc := NewHTTPClient(1)
	defer hc.CloseIdleConnections()
	creq, breq := chatRequest(benchModel, gatewayTokens)
	body := ChatBody(benchModel, gatewayTokens, true)
	ctx := context.Background()

	direct, raw, warm, infer, gw := Dist{Name: "direct"}, Dist{Name: "raw"}, Dist{Name: "warm"}, Dist{Name: "infer"}, Dist{Name: "gateway"}
	directEnd, gwEnd := Dist{Name: "direct-end"}, Dist{Name: "gateway-end"}
	sample := func(record bool) {
		s, err := Direct(ctx, bc, breq)
		if err != nil {
			b.Fatal(err)
		}
		if record {
			direct.Add(s.TTFT)
			directEnd.Add(s.Total)
		}
		if s, err = HTTPAnswer(ctx, hc, fake.URL(), body, true, nil); err != nil {
			b.Fatalf("raw: %v", err)
		}
		if record {
			raw.Add(s.TTFT)
		}
		s, ans, err := Through(ctx, n.c, n.order, creq)
		if err != nil {
			b.Fatalf("warm: %v (attempts %+v)", err, ans.Attempts)
		}
		if record {
			warm.Add(s.TTFT)
		}
		if s, ans, err = Cold(ctx, n.c, creq); err != nil {
			b.Fatalf("infer: %v (attempts %+v)", err, ans.Attempts)
		}
		if record {
			infer.Add(s.TTFT)
		}
		if s, err = HTTPAnswer(ctx, hc, url, body, true, nil); err != nil {
			b.Fatalf("gateway: %v", err)
		}
		if s.Pieces == 0 {
			b.Fatal("gateway: an answer with no content")
		}
		if record {
			gw.Add(s.TTFT)
			gwEnd.Add(s.Total)
		}
	}
	sample(false) // every connection open, every path warm
	for b.Loop() {
		sample(true)
	}
	for _, d := range []*Dist{&direct, &raw, &warm, &infer, &gw, &directEnd, &gwEnd} {
		d.Report(b, "ms")
	}
	for _, q := range []struct {
		tag string
		q   float64
	}{{"p50", .5}, {"p99", .99}} {
		ms := func(a, c *Dist) float64 { return float64(a.Quantile(q.q)-c.Quantile(q.q)) / 1e6 }
		b.ReportMetric(ms(&gw, &direct), "gateway-vs-direct-"+q.tag+"-ms")
		b.ReportMetric(ms(&gw, &raw), "gateway-vs-raw-"+q.tag+"-ms")
		b.ReportMetric(ms(&gw, &warm), "gateway-vs-warm-"+q.tag+"-ms")
		b.ReportMetric(ms(&gw, &infer), "gateway-vs-infer-"+q.tag+"-ms")
	}
}
