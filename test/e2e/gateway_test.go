package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/lloom/lloom/pkg/backend/backendtest"
)

// gatewayURL waits for the gateway's "Gateway listening" line and returns
// the base URL it names (…/v1).
func gatewayURL(t *testing.T, n *Node) string {
	t.Helper()
	var url string
	WaitFor(t, Timeout, func() error {
		for _, l := range n.Logs() {
			if strings.HasPrefix(l.Message(), "Gateway listening") && l.Str("listen") != "" {
				url = "http://" + l.Str("listen") + "/v1"
				return nil
			}
		}
		if !n.Running() {
			return n.errExited()
		}
		return errors.New(n.Name + " has not logged that it listens")
	})
	return url
}

// gatewayDo sends one request to the gateway and returns the status,
// headers and body.
func gatewayDo(t *testing.T, method, url, key, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := (&http.Client{Timeout: Timeout, Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// The binary as a user runs it: a validator, an executor with a backend,
// `lloom gateway` with its key from the environment, then what curl would
// do: list the models, stream a chat, and be refused without the key.
func TestGatewayOverTheBinary(t *testing.T) {
	fake := newFake(t, backendtest.WithTokens("Hel", "lo"))
	h := NewHarness(t)
	v := h.StartValidator("validator")
	e := h.StartBackendExecutor("executor", v.Addr, fake.URL())
	g := h.NewNode("gateway")
	g.Env = []string{"LLOOM_GATEWAY_API_KEY=sk-e2e"}
	g.Start("gateway", "--listen", "127.0.0.1:0", "--validator", v.HostPort, "--models-refresh", "200ms")
	base := gatewayURL(t, g)

	WaitFor(t, Timeout, func() error {
		code, _, body := gatewayDo(t, http.MethodGet, base+"/models", "sk-e2e", "")
		if code != http.StatusOK || !strings.Contains(body, `"id":"`+chatModel+`"`) {
			return fmt.Errorf("GET /v1/models: %d %s", code, body)
		}
		return nil
	})

	code, hdr, body := gatewayDo(t, http.MethodPost, base+"/chat/completions", "sk-e2e",
		`{"model":"`+chatModel+`","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if code != http.StatusOK || hdr.Get("X-Lloom-Executor") != e.PeerID {
		t.Fatalf("streamed chat: %d, executor %q (want %s): %s", code, hdr.Get("X-Lloom-Executor"), e.PeerID, body)
	}
	var text strings.Builder
	var events []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			events = append(events, d)
			if i := strings.Index(d, `"content":"`); i >= 0 {
				text.WriteString(strings.SplitN(d[i+len(`"content":"`):], `"`, 2)[0])
			}
		}
	}
	if len(events) < 3 || events[len(events)-1] != "[DONE]" || text.String() != "Hello" ||
		!strings.Contains(events[len(events)-2], `"receipt":"`) {
		t.Fatalf("stream %q: want the text Hello, the receipt in the last chunk, then [DONE]", events)
	}

	code, _, body = gatewayDo(t, http.MethodPost, base+"/chat/completions", "",
		`{"model":"`+chatModel+`","messages":[{"role":"user","content":"hi"}]}`)
	if code != http.StatusUnauthorized || !strings.Contains(body, `"code":"invalid_api_key"`) {
		t.Fatalf("chat without the key: %d %s; want 401 invalid_api_key", code, body)
	}
	if n := len(fake.Requests()); n != 1 {
		t.Errorf("the backend received %d requests, want 1", n)
	}
}

// Listening beyond loopback without a key is refused at start: one clear
// line and the usage exit status, before anything listens.
func TestGatewayRefusesOpenListenWithoutKey(t *testing.T) {
	h := NewHarness(t)
	r := h.Run(nil, "gateway", "--listen", "0.0.0.0:0", "--validator", "127.0.0.1:1")
	lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
	if r.Code != 2 || len(lines) != 1 || !strings.Contains(lines[0], "API key") || !strings.Contains(lines[0], "0.0.0.0:0") {
		t.Fatalf("%s\nwant exit status 2 and one line naming the address and the API key", r)
	}
}
