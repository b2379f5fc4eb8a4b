package gateway_test

import (
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lloom/lloom/node/executor"
	"github.com/lloom/lloom/node/gateway"
	"github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/pkg/backend/backendtest"
)

// With metrics on, a streamed answer still streams (the counting writer
// passes flushes on), and the gateway's scrape shows its HTTP requests by
// route and status next to the inference metrics of its client and
// go-libp2p's.
func TestGatewayMetrics(t *testing.T) {
	v := startValidator(t, nil)
	fake := backendtest.New(t, backendtest.WithModels(model), backendtest.WithTokens("Hel", "lo"))
	serve(t, v, fake, 2, nil)
	reg, url := nodetest.ServeMetrics(t, "gateway")
	g := startGateway(t, v, func(c *gateway.Config) { c.Client.Metrics = reg })
	g.waitModels(t, model)

	resp := g.open(t, t.Context(), http.MethodPost, "/v1/chat/completions", chatBody("hi", `"stream":true`))
	s := readStream(t, resp)
	resp.Body.Close()
	if !s.done || s.text != "Hello" {
		t.Fatalf("streamed answer %q (done %v) with metrics on, want Hello and [DONE]", s.text, s.done)
	}
	if code := g.postStatus("/v1/nowhere", "{}"); code != http.StatusNotFound {
		t.Fatalf("POST /v1/nowhere: %d, want 404", code)
	}

	f := nodetest.Scrape(t, url)
	for _, c := range []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"route": "POST /v1/chat/completions", "code": "200"}, 1},
		{map[string]string{"route": "/", "code": "404"}, 1},
	} {
		if n, _ := f.Sum("lloom_gateway_http_requests_total", c.labels); n != c.want {
			t.Errorf("lloom_gateway_http_requests_total%v = %v, want %v", c.labels, n, c.want)
		}
	}
	if n, _ := f.Sum("lloom_inference_requests_total", map[string]string{"model": model, "result": "ok"}); n != 1 {
		t.Errorf("lloom_inference_requests_total{model=%s,result=ok} = %v, want 1", model, n)
	}
	if n, _ := f.Sum("lloom_query_duration_seconds", map[string]string{"kind": "find_model"}); n == 0 {
		t.Error("no find-model query timed")
	}
	if n, _ := f.Sum("lloom_gateway_http_requests_in_flight", nil); n != 0 {
		t.Errorf("%v requests in flight after every answer ended, want 0", n)
	}
	for _, name := range []string{"libp2p_swarm_connections_opened_total", "go_goroutines", "lloom_build_info"} {
		if !f.Has(name) {
			t.Errorf("the gateway's scrape lacks %s", name)
		}
	}
}

// Every lloom_ and libp2p_ metric the Grafana dashboard (docs/) queries
// exists on a validator, executor or gateway after a chat went through
// them: a renamed metric shows here, not as an empty panel.
func TestDashboardNamesExist(t *testing.T) {
	vreg, _ := nodetest.ServeMetrics(t, "validator")
	v := startValidator(t, func(c *validator.Config) { c.Metrics = vreg })
	fake := backendtest.New(t, backendtest.WithModels(model), backendtest.WithTokens("Hel", "lo"))
	ereg, _ := nodetest.ServeMetrics(t, "executor")
	serve(t, v, fake, 2, func(c *executor.Config) { c.Metrics = ereg })
	greg, _ := nodetest.ServeMetrics(t, "gateway")
	g := startGateway(t, v, func(c *gateway.Config) { c.Client.Metrics = greg })
	g.waitModels(t, model)
	if resp, body := g.post(t, "/v1/chat/completions", chatBody("hi", "")); resp.StatusCode != http.StatusOK {
		t.Fatalf("chat: %d %s", resp.StatusCode, body)
	}

	have := map[string]bool{}
	for _, reg := range []prometheus.Gatherer{vreg, ereg, greg} {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			have[mf.GetName()] = true
		}
	}
	b, err := os.ReadFile("../../docs/grafana-lloom.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("docs/grafana-lloom.json: %v", err)
	}
	// go-libp2p's series that exist only once what they count happened.
	appearsLater := map[string]bool{
		"libp2p_holepunch_outcomes_total": true, // a relayed connection upgraded
		"libp2p_rcmgr_blocked_resources":  true, // a limit hit
		"libp2p_swarm_dial_errors_total":  true, // a dial failed
	}
	name := regexp.MustCompile(`\b(lloom|libp2p)_[a-z_]+`)
	checked := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, n := range name.FindAllString(tg.Expr, -1) {
				checked++
				base := n
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if b, ok := strings.CutSuffix(n, suffix); ok && have[b] {
						base = b
					}
				}
				if !have[base] && !appearsLater[base] {
					t.Errorf("panel %q queries %s, which no node exports", p.Title, n)
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d metric names found in the dashboard", checked)
	}
}
