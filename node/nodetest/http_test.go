package nodetest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/protocol/pb"
)

func getJSON(t *testing.T, url string, want int) map[string]any {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s, want %d", url, resp.StatusCode, b, want)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", url, ct)
	}
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return m
}

// sseEvent is one server-sent event.
type sseEvent struct {
	name, id string
	data     map[string]any
}

// readEvent reads the next event, skipping comments and the retry field.
func readEvent(t *testing.T, r *bufio.Reader) sseEvent {
	t.Helper()
	var ev sseEvent
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("event stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && ev.name != "":
			return ev
		case strings.HasPrefix(line, "event: "):
			ev.name = line[7:]
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[6:]), &ev.data); err != nil {
				t.Fatalf("event %s: data %v", ev.name, err)
			}
		}
	}
}

// The validator's read-only HTTP API: JSON in DESIGN §3's shape, JSON
// errors, and the event stream with its snapshot, changes and resumption.
func TestHTTPAPI(t *testing.T) {
	v, _ := StartValidator(t, func(c *validator.Config) { c.HTTPListen = "127.0.0.1:0" })
	base := "http://" + v.HTTPAddr()

	// The stream's headers come at once, before any change.
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("events: %d %q", resp.StatusCode, ct)
	}
	events := bufio.NewReader(resp.Body)
	snap := readEvent(t, events)
	if snap.name != "snapshot" || len(snap.data["executors"].([]any)) != 0 || snap.id != snap.data["version"] {
		t.Fatalf("first event %q id %q: %v; want an empty snapshot with its version as id", snap.name, snap.id, snap.data)
	}

	e, _ := StartExecutor(t, []*validator.Validator{v}, []*pb.ModelDescriptor{Model("http-model", 2)}, nil)
	Eventually(t, "the executor verified", Registered(v, e.ID(), "http-model"))

	var ch sseEvent
	for ch.name != "change" || ch.data["executor"].(map[string]any)["verified"] != true {
		ch = readEvent(t, events)
	}
	x := ch.data["executor"].(map[string]any)
	if x["peer_id"] != e.ID().String() || ch.id != ch.data["version"] {
		t.Errorf("change event: %v", ch.data)
	}
	if _, ok := ch.data["version"].(string); !ok {
		t.Errorf("version %T, want a string (it passes 2^53)", ch.data["version"])
	}
	cancel()

	stats := getJSON(t, base+"/api/v1/stats", 200)
	if stats["executors"] != 1.0 || stats["peer_id"] != v.ID().String() {
		t.Errorf("stats: executors %v (want the number 1), peer %v", stats["executors"], stats["peer_id"])
	}
	xs := getJSON(t, base+"/api/v1/executors", 200)
	list := xs["executors"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["peer_id"] != e.ID().String() || list[0].(map[string]any)["status"] != "healthy" {
		t.Fatalf("executors: %v", xs)
	}
	m := list[0].(map[string]any)["models"].([]any)[0].(map[string]any)
	if _, ok := m["input_token_price_wei"].(string); !ok || m["capacity"] == nil {
		t.Errorf("executor model %v: prices are strings, capacity a number", m)
	}
	models := getJSON(t, base+"/api/v1/models", 200)
	if ms := models["models"].([]any); len(ms) != 1 || ms[0].(map[string]any)["healthy"] != 1.0 {
		t.Errorf("models: %v", models)
	}
	if got := getJSON(t, base+"/api/v1/executors?model=nope", 200); got["total_count"] != 0.0 {
		t.Errorf("executors of an unknown model: %v", got)
	}

	// Errors are JSON; the API is read-only.
	if e := getJSON(t, base+"/api/v1/nope", 404)["error"].(map[string]any); e["code"] != "not_found" {
		t.Errorf("unknown path: %v", e)
	}
	if e := getJSON(t, base+"/api/v1/executors?limit=5000", 400)["error"].(map[string]any); !strings.Contains(e["message"].(string), "limit") {
		t.Errorf("bad limit: %v", e)
	}
	r, err := http.Post(base+"/api/v1/stats", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", r.StatusCode)
	}

	// Coming back with Last-Event-ID resumes after it.
	req, _ = http.NewRequest(http.MethodGet, base+"/api/v1/events", nil)
	req.Header.Set("Last-Event-ID", ch.id)
	ctx2, cancel2 := context.WithTimeout(context.Background(), Timeout)
	defer cancel2()
	resp2, err := http.DefaultClient.Do(req.WithContext(ctx2))
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	if ev := readEvent(t, bufio.NewReader(resp2.Body)); ev.name != "resumed" || ev.data["version"] != ch.id {
		t.Errorf("with Last-Event-ID %s: %q %v, want resumed", ch.id, ev.name, ev.data)
	}

	// The page and its assets are embedded.
	for path, want := range map[string]string{"/": "text/html", "/assets/dashboard.js": "javascript", "/assets/dashboard.css": "text/css"} {
		r, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != 200 || !strings.Contains(r.Header.Get("Content-Type"), want) || len(b) < 100 || r.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: %d %q %d bytes", path, r.StatusCode, r.Header.Get("Content-Type"), len(b))
		}
	}
	if v.Feed().Served < 2 {
		t.Errorf("feed figures %+v", v.Feed())
	}
}

// An idle event stream gets a ":" comment every EventKeepAlive, so that
// proxies do not close it; shortened here, it must come long before the
// default's 15 s would.
func TestEventStreamKeepAlive(t *testing.T) {
	v, _ := StartValidator(t, func(c *validator.Config) {
		c.HTTPListen = "127.0.0.1:0"
		c.EventKeepAlive = 50 * time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), validator.DefaultEventKeepAlive/3)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+v.HTTPAddr()+"/api/v1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if ev := readEvent(t, r); ev.name != "snapshot" {
		t.Fatalf("first event %q, want snapshot", ev.name)
	}
	for comments := 0; comments < 2; {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("an idle event stream sent %d keepalive comments, then: %v; want one every 50ms", comments, err)
		}
		if line == ": keepalive\n" {
			comments++
		}
	}
}
