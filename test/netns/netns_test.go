//go:build netns

// Package netns tests reachability on a real topology (DESIGN §11): Linux
// network namespaces joined by veth pairs, a public segment on
// 1.2.3.0/24 (which exists only inside them) and homes behind
// masquerading routers. It runs the lloom binary ($LLOOM_BIN) as root:
// make test-netns.
package netns

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lloom/lloom/pkg/backend/backendtest"
)

// TestMain doubles as the fake OpenAI-compatible backend that the tests
// start inside a namespace (re-executing this test binary with
// LLOOM_NETNS_BACKEND set): it serves until its standard input closes.
func TestMain(m *testing.M) {
	if model := os.Getenv("LLOOM_NETNS_BACKEND"); model != "" {
		h := &helperTB{}
		f := backendtest.New(h, backendtest.WithModels(model))
		fmt.Println(f.URL())
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the test closes stdin
		h.cleanup()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helperTB is the little of testing.TB that backendtest.New uses, for the
// backend process, which runs no test.
type helperTB struct {
	testing.TB // nil: any other method would panic, and none is called
	cleanups   []func()
}

func (h *helperTB) Helper()                   {}
func (h *helperTB) Cleanup(f func())          { h.cleanups = append(h.cleanups, f) }
func (h *helperTB) Fatalf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...); os.Exit(1) }
func (h *helperTB) Errorf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
func (h *helperTB) Logf(f string, a ...any)   {}
func (h *helperTB) cleanup() {
	for i := len(h.cleanups) - 1; i >= 0; i-- {
		h.cleanups[i]()
	}
}

type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	in   interface{ Close() error }
}

func (p *proc) logs() string { p.mu.Lock(); defer p.mu.Unlock(); return p.out.String() }

type lockedWriter struct{ p *proc }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

// start runs args in ns; it is killed at cleanup, its output logged when
// the test failed.
func start(t *testing.T, ns, name string, env []string, args ...string) *proc {
	t.Helper()
	full := append([]string{"netns", "exec", ns, "env", "LIBP2P_TCP_REUSEPORT=false", "LLOOM_HOME=" + t.TempDir()}, env...)
	cmd := exec.Command("ip", append(full, args...)...)
	p := &proc{name: name, cmd: cmd}
	cmd.Stdout, cmd.Stderr = lockedWriter{p}, lockedWriter{p}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("--- %s ---\n%s", name, tail(p.logs(), 60))
		}
	})
	return p
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func bin(t *testing.T) string {
	b := os.Getenv("LLOOM_BIN")
	if b == "" {
		t.Fatal("LLOOM_BIN not set: run make test-netns, which builds the binary and sets it")
	}
	return b
}

// backend starts the fake backend in ns and returns its URL.
func backend(t *testing.T, ns, model string) string {
	t.Helper()
	self, _ := os.Executable()
	cmd := exec.Command("ip", "netns", "exec", ns, "env", "LLOOM_NETNS_BACKEND="+model, self)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("backend in %s: %v", ns, err)
	}
	return strings.TrimSpace(url)
}

func listen(ip string) []string {
	return []string{"--listen", "/ip4/" + ip + "/tcp/4001", "--listen", "/ip4/" + ip + "/udp/4001/quic-v1"}
}

// validator starts a validator in ns and returns its QUIC address.
func validator(t *testing.T, ns, ip string, extra ...string) (string, *proc) {
	t.Helper()
	af := filepath.Join(t.TempDir(), "addr")
	args := append([]string{bin(t), "validator", "--addr-file", af}, listen(ip)...)
	p := start(t, ns, "validator "+ns, nil, append(args, extra...)...)
	var addr string
	waitFor(t, 15*time.Second, "validator address file", func() bool {
		b, _ := os.ReadFile(af)
		for _, l := range strings.Fields(string(b)) {
			if strings.Contains(l, "/quic-v1/") {
				addr = l
			}
		}
		return addr != ""
	})
	return addr, p
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		if ok() {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
	return 0
}

type chatOut struct {
	Executor   string `json:"executor"`
	Text       string `json:"text"`
	Complete   bool   `json:"complete"`
	Error      string `json:"error"`
	TTFTMs     int64  `json:"ttft_ms"`
	Connection string `json:"connection"`
	Punch      string `json:"punch"`
}

// chat runs lloom client chat in ns and decodes its --json answer.
func chat(t *testing.T, ns, model string, validators ...string) (chatOut, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "env", "LIBP2P_TCP_REUSEPORT=false", "LLOOM_HOME="+t.TempDir(),
		bin(t), "client", "chat", model, "hello", "--json", "--validator", strings.Join(validators, ","))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var c chatOut
	if jerr := json.Unmarshal(out, &c); jerr != nil {
		return c, fmt.Errorf("chat in %s: %v %v\n%s\n%s", ns, err, jerr, out, tail(stderr.String(), 20))
	}
	if !c.Complete {
		return c, fmt.Errorf("chat in %s: incomplete: %s\n%s", ns, c.Error, tail(stderr.String(), 20))
	}
	return c, nil
}

// relayBytes is the sum of the validators' relay_bytes (lloom client stats).
func relayBytes(t *testing.T, ns string, validators ...string) uint64 {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "env", "LLOOM_HOME="+t.TempDir(),
		bin(t), "client", "stats", "--json", "--validator", strings.Join(validators, ",")).Output()
	if err != nil {
		t.Fatalf("client stats in %s: %v\n%s", ns, err, out)
	}
	var st struct {
		Validators []struct {
			RelayBytes uint64 `json:"relay_bytes"`
		} `json:"validators"`
	}
	if err := json.Unmarshal(out, &st); err != nil || len(st.Validators) != len(validators) {
		t.Fatalf("client stats in %s: %v\n%s", ns, err, out)
	}
	var n uint64
	for _, v := range st.Validators {
		n += v.RelayBytes
	}
	return n
}

// nftIn loads nftables rules into ns (a namespace the test made).
func nftIn(t *testing.T, ns, rules string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v\n%s", ns, err, out)
	}
}

// report collects the figures for docs/PERFORMANCE.md.
func report(t *testing.T, format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	t.Log("MEASURE " + line)
	if f := os.Getenv("LLOOM_NETNS_REPORT"); f != "" {
		fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(fh, line)
			fh.Close()
		}
	}
}

// TestReachThroughNAT: two validators and a client on the public segment,
// two homes behind NAT with an executor and a backend each.
func TestReachThroughNAT(t *testing.T) {
	tp := newTopo(t)
	pub := tp.segment("pub")
	v1ns, v2ns, cns := tp.ns("v1"), tp.ns("v2"), tp.ns("cl")
	pub.attach(v1ns, "eth0", "1.2.3.11/24")
	pub.attach(v2ns, "eth0", "1.2.3.12/24")
	pub.attach(cns, "eth0", "1.2.3.20/24")
	h1 := tp.home(pub, "h1", "1.2.3.101/24", "10.1.0")
	h2 := tp.home(pub, "h2", "1.2.3.102/24", "10.2.0")

	va, vaProc := validator(t, v1ns, "1.2.3.11")
	vb, _ := validator(t, v2ns, "1.2.3.12", "--validator", va)

	// The DHT: a node that knows only validator A finds validator B.
	vbID := vb[strings.LastIndex(vb, "/")+1:]
	exStart := time.Now()
	ex := map[string]*proc{}
	for i, h := range []string{h1, h2} {
		model := fmt.Sprintf("home%d-model", i+1)
		url := backend(t, h, model)
		// Executors know only validator A.
		ex[model] = start(t, h, "executor "+h, nil, append([]string{bin(t), "executor", "--backend-url", url, "--model", model, "--validator", va}, listen("0.0.0.0")...)...)
	}
	waitFor(t, 60*time.Second, "executors to reserve relay slots and find validator B through the DHT", func() bool {
		for _, p := range ex {
			if !strings.Contains(p.logs(), "p2p-circuit") || !strings.Contains(p.logs(), vbID) {
				return false
			}
		}
		return true
	})
	report(t, "executor start to relayed addresses announced: %s", time.Since(exStart).Round(100*time.Millisecond))

	// Discovered, and chat-ready through NAT, from the public client.
	for _, model := range []string{"home1-model", "home2-model"} {
		var first chatOut
		d := waitFor(t, 60*time.Second, "a public client's chat with "+model, func() bool {
			c, err := chat(t, cns, model, va)
			first = c
			if err != nil {
				t.Log(err)
			}
			return err == nil
		})
		report(t, "public client -> %s: chat-ready %s after relay addresses; connection %s, punch %s, TTFT %d ms", model, d.Round(100*time.Millisecond), first.Connection, first.Punch, first.TTFTMs)
	}

	// A client at home 1 chats with the executor at home 2.
	c, err := chat(t, h1, "home2-model", va)
	if err != nil {
		t.Fatalf("home1 client -> home2 executor: %v", err)
	}
	report(t, "home1 client -> home2 executor: connection %s, punch %s, TTFT %d ms", c.Connection, c.Punch, c.TTFTMs)

	// Relay bytes per request: the validators' relay counters around one
	// chat that a punch upgraded, and around one that stays relayed
	// because the public client's packets to home 1 are dropped (only
	// its traffic through the relays passes).
	before := relayBytes(t, cns, va, vb)
	c, err = chat(t, cns, "home1-model", va)
	if err != nil {
		t.Fatalf("public client -> home1 executor: %v", err)
	}
	punched := relayBytes(t, cns, va, vb) - before
	nftIn(t, cns, `table inet lloomblock { chain egress { type filter hook output priority 0; ip daddr 1.2.3.101 drop; }; }`)
	before = relayBytes(t, cns, va, vb)
	rc, err := chat(t, cns, "home1-model", va)
	if err != nil {
		t.Fatalf("public client -> home1 executor, direct path blocked: %v", err)
	}
	relayed := relayBytes(t, cns, va, vb) - before
	tp.in(cns, "nft", "delete", "table", "inet", "lloomblock")
	if rc.Connection != "relayed" {
		t.Errorf("with the direct path blocked the chat ran %s", rc.Connection)
	}
	report(t, "relay bytes per request (8-token answer): %d with the direct path blocked (connection %s, punch %s, TTFT %d ms); %d when a punch upgraded it (connection %s)",
		relayed, rc.Connection, rc.Punch, rc.TTFTMs, punched, c.Connection)

	// Punch statistics over several fresh clients (each a new process), by
	// path: public -> home, home -> the other home, and home -> the same
	// home (a LAN address, no punch needed).
	type tally struct {
		chats, tried, succeeded, direct int
		ttftDirect, ttftRelayed         []int64
	}
	paths := map[string]*tally{"public->home": {}, "home->other home": {}, "home->same home": {}}
	for i := 0; i < 4; i++ {
		for _, m := range []string{"home1-model", "home2-model"} {
			for _, ns := range []string{cns, h1} {
				path := "public->home"
				if ns == h1 && m == "home1-model" {
					path = "home->same home"
				} else if ns == h1 {
					path = "home->other home"
				}
				tl := paths[path]
				tl.chats++
				c, err := chat(t, ns, m, va)
				if err != nil {
					t.Logf("chat %s from %s: %v", m, ns, err)
					continue
				}
				if c.Punch == "succeeded" || c.Punch == "failed" {
					tl.tried++
				}
				if c.Punch == "succeeded" {
					tl.succeeded++
				}
				if c.Connection == "direct" {
					tl.direct++
					tl.ttftDirect = append(tl.ttftDirect, c.TTFTMs)
				} else {
					tl.ttftRelayed = append(tl.ttftRelayed, c.TTFTMs)
				}
			}
		}
	}
	for _, path := range []string{"public->home", "home->other home", "home->same home"} {
		tl := paths[path]
		report(t, "hole punches %s: %d of %d tried succeeded; %d of %d chats direct; TTFT direct %v ms, relayed %v ms",
			path, tl.succeeded, tl.tried, tl.direct, tl.chats, tl.ttftDirect, tl.ttftRelayed)
	}
	if tl := paths["home->other home"]; tl.succeeded == 0 {
		t.Errorf("no home->home hole punch succeeded (%d tried)", tl.tried)
	}

	// Validator A killed: everything keeps working through B.
	_ = vaProc.cmd.Process.Kill()
	for _, model := range []string{"home1-model", "home2-model"} {
		waitFor(t, 90*time.Second, model+" through validator B after A was killed", func() bool {
			_, err := chat(t, cns, model, vb)
			if err != nil {
				t.Log(err)
			}
			return err == nil
		})
	}
}

// TestMDNSFindsValidator: on a LAN, a validator with --mdns and no
// --validator finds another one.
func TestMDNSFindsValidator(t *testing.T) {
	tp := newTopo(t)
	lan := tp.segment("lan")
	a, b := tp.ns("la"), tp.ns("lb")
	lan.attach(a, "eth0", "192.168.77.2/24")
	lan.attach(b, "eth0", "192.168.77.3/24")
	for _, ns := range []string{a, b} {
		tp.in(ns, "ip", "route", "add", "224.0.0.0/4", "dev", "eth0")
	}
	_, pa := validator(t, a, "192.168.77.2", "--mdns")
	vb, _ := validator(t, b, "192.168.77.3", "--mdns")
	id := vb[strings.LastIndex(vb, "/")+1:]
	d := waitFor(t, 30*time.Second, "validator A to find B by mDNS", func() bool {
		return strings.Contains(pa.logs(), id) && strings.Contains(pa.logs(), "mdns")
	})
	report(t, "mDNS: validator found on the LAN in %s", d.Round(100*time.Millisecond))
}
