package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/lloom/lloom/node/gateway"
	"github.com/lloom/lloom/node/nodetest"
)

// The chat page is served at / with its assets, embedded, with a policy
// that keeps it on this origin; unknown paths, /v1 ones included, stay
// JSON 404s; the page needs no key even when the API does.
func TestChatPage(t *testing.T) {
	v, _ := nodetest.StartValidator(t, nil)
	g := startGateway(t, v, func(c *gateway.Config) { c.APIKey = "secret" })
	for path, want := range map[string]string{"/": "text/html", "/ui/chat.js": "javascript", "/ui/chat.css": "text/css"} {
		resp, err := http.Get(g.url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), want) || len(b) < 200 {
			t.Errorf("GET %s: %d %q, %d bytes", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(b))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
	for _, c := range []struct{ method, path string }{{"GET", "/v1/nope"}, {"POST", "/"}, {"GET", "/ui/nope.js"}, {"GET", "/index.html"}} {
		req, _ := http.NewRequest(c.method, g.url+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error struct{ Code string } `json:"error"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 404 || err != nil || body.Error.Code != "not_found" {
			t.Errorf("%s %s: %d %v %+v, want a JSON 404", c.method, c.path, resp.StatusCode, err, body)
		}
	}
}
