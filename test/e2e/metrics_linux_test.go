package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lloom/lloom/pkg/backend/backendtest"
	"github.com/lloom/lloom/pkg/metrics/metricstest"
)

// Every long-running role serves Prometheus' text format at
// --metrics-listen (or LLOOM_METRICS_LISTEN): the validator, an executor
// (its address from the environment) and the gateway, after one chat
// through them, each show their own figures, go-libp2p's and the Go
// runtime's; and no other port of theirs answers /metrics.
func TestMetricsOverTheBinary(t *testing.T) {
	fake := newFake(t, backendtest.WithTokens("Hel", "lo"))
	h := NewHarness(t)
	v := h.StartValidator("validator", "--metrics-listen", "127.0.0.1:0")
	e := h.NewNode("executor")
	e.Env = []string{"LLOOM_METRICS_LISTEN=127.0.0.1:0"}
	e.StartExecutor("--validator", v.Addr, "--backend-url", fake.URL(), "--model", chatModel)
	g := h.NewNode("gateway")
	g.Start("gateway", "--listen", "127.0.0.1:0", "--validator", v.HostPort, "--models-refresh", "200ms", "--metrics-listen", "127.0.0.1:0")
	base := gatewayURL(t, g)
	WaitFor(t, Timeout, func() error {
		code, _, body := gatewayDo(t, http.MethodGet, base+"/models", "", "")
		if code != http.StatusOK || !strings.Contains(body, `"id":"`+chatModel+`"`) {
			return fmt.Errorf("GET /v1/models: %d %s", code, body)
		}
		return nil
	})
	if code, _, body := gatewayDo(t, http.MethodPost, base+"/chat/completions", "",
		`{"model":"`+chatModel+`","messages":[{"role":"user","content":"hi"}]}`); code != http.StatusOK {
		t.Fatalf("chat through the gateway: %d %s", code, body)
	}

	for _, c := range []struct {
		n     *Node
		names []string
		value string // a series…
		want  float64
		with  map[string]string
	}{
		{v, []string{"lloom_validator_messages_total", "lloom_heartbeat_lag_seconds", "lloom_pulls_total", "lloom_registry_models", "libp2p_rcmgr_connections"},
			"lloom_registry_executors", 1, map[string]string{"status": "healthy"}},
		{e, []string{"lloom_executor_load", "lloom_inference_ttft_seconds", "lloom_inference_tokens_total", "libp2p_swarm_connections_opened_total"},
			"lloom_inference_requests_total", 1, map[string]string{"model": chatModel, "result": "ok"}},
		{g, []string{"lloom_gateway_http_requests_total", "lloom_query_duration_seconds", "lloom_inference_attempts_total", "libp2p_identify_identify_pushes_triggered_total"},
			"lloom_inference_requests_total", 1, map[string]string{"model": chatModel, "result": "ok"}},
	} {
		url := metricsURL(t, c.n)
		fams, err := metricstest.Scrape(t.Context(), url)
		if err != nil {
			t.Fatalf("%s: %v", c.n.Name, err)
		}
		for _, name := range append(c.names, "go_goroutines", "process_resident_memory_bytes", "lloom_build_info") {
			if !fams.Has(name) {
				t.Errorf("%s: %s lacks %s", c.n.Name, url, name)
			}
		}
		if got, _ := fams.Sum(c.value, c.with); got != c.want {
			t.Errorf("%s: %s%v = %v, want %v", c.n.Name, c.value, c.with, got, c.want)
		}
		if got := metricsPorts(t, c.n); len(got) != 1 || !strings.HasSuffix(url, ":"+strconv.Itoa(got[0])+"/metrics") {
			t.Errorf("%s: ports answering /metrics %v, want only the one of %s", c.n.Name, got, url)
		}
	}
}

// Without --metrics-listen nothing serves metrics: no port of any role
// answers /metrics.
func TestNoMetricsUnlessAsked(t *testing.T) {
	fake := newFake(t)
	h := NewHarness(t)
	v := h.StartValidator("validator")
	e := h.StartBackendExecutor("executor", v.Addr, fake.URL())
	g := h.NewNode("gateway")
	g.Start("gateway", "--listen", "127.0.0.1:0", "--validator", v.HostPort)
	gatewayURL(t, g)
	for _, n := range []*Node{v, e, g} {
		if ls := n.FindLogs("", metricsLine); len(ls) > 0 {
			t.Errorf("%s logs %q without --metrics-listen", n.Name, ls[0].Message())
		}
		if got := metricsPorts(t, n); len(got) > 0 {
			t.Errorf("%s: ports %v answer /metrics without --metrics-listen", n.Name, got)
		}
	}
}

// A --metrics-listen that is not HOST:PORT, or cannot be bound, stops the
// command at once with one line naming the flag.
func TestMetricsListenRefusesBadAddresses(t *testing.T) {
	h := NewHarness(t)
	for _, args := range [][]string{
		{"validator", "--listen", "/ip4/127.0.0.1/tcp/0", "--metrics-listen", "nonsense"},
		{"executor", "--listen", "/ip4/127.0.0.1/tcp/0", "--metrics-listen", "127.0.0.1:99999"},
		{"gateway", "--listen", "127.0.0.1:0", "--validator", "127.0.0.1:1", "--metrics-listen", "256.0.0.1:0"},
	} {
		r := h.Run(nil, args...)
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		if last := lines[len(lines)-1]; r.Code != 2 || !strings.Contains(last, "--metrics-listen") {
			t.Errorf("%s\nwant exit status 2 and a last line naming --metrics-listen", r)
		}
	}
}

func metricsLine(l LogLine) bool { return strings.HasPrefix(l.Message(), "Metrics listening") }

// metricsURL waits for a node's "Metrics listening" line and returns the
// URL of its /metrics.
func metricsURL(t *testing.T, n *Node) string {
	t.Helper()
	l := n.WaitLog("", func(l LogLine) bool { return metricsLine(l) && l.Str("listen") != "" })
	return "http://" + l.Str("listen") + "/metrics"
}

// metricsPorts returns the TCP ports the node's process listens on that
// answer GET /metrics with Prometheus' text format.
func metricsPorts(t *testing.T, n *Node) []int {
	t.Helper()
	cmd, _ := n.proc()
	ports, err := listeningPorts(cmd.Process.Pid)
	if err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	if len(ports) == 0 {
		t.Fatalf("%s: listens on no TCP port at all", n.Name)
	}
	var out []int
	for _, p := range ports {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err := metricstest.Scrape(ctx, "http://127.0.0.1:"+strconv.Itoa(p)+"/metrics")
		cancel()
		if err == nil {
			out = append(out, p)
		}
	}
	return out
}

// listeningPorts lists the TCP ports (IPv4 and IPv6) that process pid
// listens on, from the sockets among its open files.
func listeningPorts(pid int) ([]int, error) {
	fds, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	seen := map[int]bool{}
	var ports []int
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "net", table))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			// sl local_address rem_address st tx_queue rx_queue tr tm->when retrnsmt uid timeout inode
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != "0A" || !inodes[fs[9]] { // 0A: LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(fs[1], ":")
			p, err := strconv.ParseUint(hexPort, 16, 16)
			if err == nil && !seen[int(p)] {
				seen[int(p)] = true
				ports = append(ports, int(p))
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return ports, nil
}
