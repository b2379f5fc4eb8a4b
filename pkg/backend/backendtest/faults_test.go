package backendtest_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lloom/lloom/pkg/backend/backendtest"
)

func TestSetFail(t *testing.T) {
	f := backendtest.New(t)
	f.SetFail(429, "", "7")
	resp := post(t, t.Context(), f.URL()+"/chat/completions", chatBody)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" || !strings.Contains(string(body), "Too Many Requests") {
		t.Fatalf("got %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	f.SetFail(503, "overloaded, go away", "")
	mresp, err := http.Get(f.URL() + "/models")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if mresp.StatusCode != 503 || string(body) != "overloaded, go away" {
		t.Fatalf("models: got %d %q", mresp.StatusCode, body)
	}
	if n := len(f.Requests()); n != 1 {
		t.Fatalf("%d requests recorded, want the refused one", n)
	}
	f.SetFail(0, "", "")
	if resp := post(t, t.Context(), f.URL()+"/chat/completions", chatBody); resp.StatusCode != 200 {
		t.Fatalf("after SetFail(0): status %d", resp.StatusCode)
	}
}

func TestSetDown(t *testing.T) {
	f := backendtest.New(t)
	f.SetDown(true)
	if resp, err := http.Get(f.URL() + "/models"); err == nil {
		resp.Body.Close()
		t.Fatalf("models while down: status %d, want a transport error", resp.StatusCode)
	}
	if resp, err := http.Post(f.URL()+"/chat/completions", "application/json", strings.NewReader(chatBody)); err == nil {
		resp.Body.Close()
		t.Fatalf("completion while down: status %d, want a transport error", resp.StatusCode)
	}
	f.SetDown(false)
	if resp := post(t, t.Context(), f.URL()+"/chat/completions", chatBody); resp.StatusCode != 200 {
		t.Fatalf("after SetDown(false): status %d", resp.StatusCode)
	}
	if f.Cancelled() != 0 {
		t.Fatalf("Cancelled = %d: a dropped connection is not a client going away", f.Cancelled())
	}
}

func TestDownCutsStreamInFlight(t *testing.T) {
	f := backendtest.New(t)
	release := f.Block()
	errc := make(chan error, 1)
	go func() {
		resp, err := http.Post(f.URL()+"/chat/completions", "application/json", strings.NewReader(chatBody))
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		errc <- err
	}()
	f.WaitActive(t, 1, within)
	f.SetDown(true)
	release()
	if err := <-errc; err == nil {
		t.Fatal("stream held while the fake went down: no error, want a transport error")
	}
}

func TestCutAfterAndNoUsage(t *testing.T) {
	f := backendtest.New(t)
	f.SetCutAfter(2)
	text, finish, _, completion, done := summary(t, readEvents(t, post(t, t.Context(), f.URL()+"/chat/completions", chatBody).Body))
	if text != "w0 w1" || finish != "" || completion != -1 || done {
		t.Fatalf("cut after 2: got %q finish %q usage %d done %v; want 2 tokens and nothing else", text, finish, completion, done)
	}
	f.SetCutAfter(-1)
	f.SetNoUsage(true)
	text, finish, _, completion, done = summary(t, readEvents(t, post(t, t.Context(), f.URL()+"/chat/completions", chatBody).Body))
	if text == "" || finish != "stop" || completion != -1 || !done {
		t.Fatalf("no usage: got %q finish %q usage %d done %v", text, finish, completion, done)
	}
}

func TestBlockActivePeak(t *testing.T) {
	f := backendtest.New(t)
	release := f.Block()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			resp, err := http.Post(f.URL()+"/chat/completions", "application/json", strings.NewReader(chatBody))
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	f.WaitActive(t, 3, within)
	if f.Peak() != 3 {
		t.Fatalf("Peak = %d with 3 held, want 3", f.Peak())
	}
	release()
	wg.Wait()
	f.WaitActive(t, 0, within)
	if f.Peak() != 3 || len(f.Requests()) != 3 || f.Cancelled() != 0 {
		t.Fatalf("after release: peak %d, %d requests, %d cancelled", f.Peak(), len(f.Requests()), f.Cancelled())
	}
	f.ResetStats()
	if f.Peak() != 0 || len(f.Requests()) != 0 {
		t.Fatalf("after ResetStats: peak %d, %d requests", f.Peak(), len(f.Requests()))
	}
}

func TestClientGoneIsCancelled(t *testing.T) {
	f := backendtest.New(t)
	f.SetDelay(0, time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	resp := post(t, ctx, f.URL()+"/completions", `{"model":"test-model","prompt":"x","stream":true}`)
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.Contains(line, `"text":"w0"`) {
		t.Fatalf("first line %q, %v: want the first token at once", line, err)
	}
	cancel()
	f.WaitCancelled(t, 1, within)
	f.WaitActive(t, 0, within)
}

func TestRequestsRecorded(t *testing.T) {
	f := backendtest.New(t)
	post(t, t.Context(), f.URL()+"/completions",
		`{"model":"test-model","prompt":"p","max_tokens":5,"temperature":0,"top_p":0.5,"stop":["x"],"seed":-3}`)
	got := f.Requests()
	if len(got) != 1 {
		t.Fatalf("%d requests, want 1", len(got))
	}
	r := got[0]
	if r.Path != "/v1/completions" || r.Prompt != "p" || *r.MaxTokens != 5 || *r.Temperature != 0 || *r.TopP != 0.5 ||
		len(r.Stop) != 1 || *r.Seed != -3 || r.Stream || r.IncludeUsage {
		t.Fatalf("recorded %+v", r)
	}
}
