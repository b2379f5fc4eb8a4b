package gateway_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"

	"github.com/lloom/lloom/node/executor"
	"github.com/lloom/lloom/node/gateway"
	"github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/pkg/backend/backendtest"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// model is the model every fake backend of these tests serves.
const model = "test-model"

// within bounds the waits of these tests that a test does not bound itself.
const within = nodetest.Timeout

// startValidator starts a validator; mutate may change its config.
func startValidator(t *testing.T, mutate func(*validator.Config)) *validator.Validator {
	t.Helper()
	v, _ := nodetest.StartValidator(t, mutate)
	return v
}

// serve starts an executor serving model (with this capacity) from fake and
// waits until v has registered it. mutate may change its config.
func serve(t *testing.T, v *validator.Validator, fake *backendtest.Fake, capacity uint32, mutate func(*executor.Config)) *executor.Executor {
	t.Helper()
	return serveModel(t, v, fake, nodetest.Model(model, capacity), mutate)
}

// serveModel starts an executor serving one model from fake and waits
// until v has registered it.
func serveModel(t *testing.T, v *validator.Validator, fake *backendtest.Fake, m *pb.ModelDescriptor, mutate func(*executor.Config)) *executor.Executor {
	t.Helper()
	e, _ := nodetest.StartExecutor(t, []*validator.Validator{v}, []*pb.ModelDescriptor{m}, func(c *executor.Config) {
		c.Backend.URL = fake.URL()
		c.InferenceRate = 0
		if mutate != nil {
			mutate(c)
		}
	})
	nodetest.Eventually(t, "executor registered", nodetest.Registered(v, e.ID(), m.GetModelId()))
	return e
}

// noQueue makes an executor queue nothing beyond its capacity.
func noQueue(c *executor.Config) {
	zero := uint32(0)
	c.Serving = map[string]executor.ModelServing{model: {Queue: &zero}}
}

// gw is a gateway serving HTTP on loopback for one test.
type gw struct {
	*gateway.Gateway
	url string // http://127.0.0.1:PORT
}

// startGateway starts a gateway of validator v on a free loopback port;
// mutate may change its config. It is stopped when the test ends.
func startGateway(t *testing.T, v *validator.Validator, mutate func(*gateway.Config)) *gw {
	t.Helper()
	cfg := gateway.DefaultConfig()
	if v != nil { // nil: mutate names the validators
		cfg.Client.Validators = nodetest.Bootstraps(t, v)
	}
	cfg.Client.Timeout = 5 * time.Second
	cfg.Client.Logger = nodetest.Logger(t).With().Str("node", "gateway-client").Logger()
	cfg.Listen = "127.0.0.1:0"
	cfg.ModelsRefresh = 100 * time.Millisecond
	cfg.Timeout = 20 * time.Second
	cfg.Logger = nodetest.Logger(t).With().Str("node", "gateway").Logger()
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	if err := g.Listen(); err != nil {
		g.Close()
		t.Fatalf("gateway Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway Run returned %v", err)
			}
		case <-time.After(within):
			t.Errorf("gateway Run did not return within %s of its context ending", within)
		}
		g.Close()
	})
	return &gw{Gateway: g, url: "http://" + g.Addr()}
}

// httpClient talks to the gateways of these tests; no test shares a
// connection with another.
func httpClient(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 2 * within}
}

// do sends one request and returns the response with its whole body.
func (g *gw) do(t *testing.T, ctx context.Context, method, path, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	resp := g.open(t, ctx, method, path, body, header...)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp, b
}

// open sends one request and returns the response, its body unread and
// closed when the test ends. header is name, value pairs.
func (g *gw) open(t *testing.T, ctx context.Context, method, path, body string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, g.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := httpClient(t).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// post sends a JSON body to path and returns the response and its body.
func (g *gw) post(t *testing.T, path, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	return g.do(t, t.Context(), http.MethodPost, path, body, header...)
}

// postStatus sends a POST and returns its status, 0 if it failed; unlike
// post it may run off the test's goroutine.
func (g *gw) postStatus(path, body string) int {
	resp, err := http.Post(g.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// chatBody is a chat request for model with one user message; extra is
// more JSON members ("" for none).
func chatBody(content, extra string) string {
	b := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":%q}]`, model, content)
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

// completionBody is a completion request for model.
func completionBody(prompt, extra string) string {
	b := fmt.Sprintf(`{"model":%q,"prompt":%q`, model, prompt)
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

// The JSON the gateway answers with, as an OpenAI client reads it.
type (
	errorBody struct {
		Error *struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    string  `json:"code"`
		} `json:"error"`
	}
	usageJSON struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	}
	attemptJSON struct {
		Executor  string `json:"executor"`
		ErrorCode int32  `json:"error_code"`
		Error     string `json:"error"`
	}
	lloomJSON struct {
		Executor string        `json:"executor"`
		Receipt  string        `json:"receipt"`
		Attempts []attemptJSON `json:"attempts"`
	}
	choiceJSON struct {
		Index   int `json:"index"`
		Message *struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Delta *struct {
			Role    *string `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		Text         *string `json:"text"`
		FinishReason *string `json:"finish_reason"`
	}
	// answerJSON is a whole answer or one chunk of a streamed one.
	answerJSON struct {
		ID      string       `json:"id"`
		Object  string       `json:"object"`
		Created int64        `json:"created"`
		Model   string       `json:"model"`
		Choices []choiceJSON `json:"choices"`
		Usage   *usageJSON   `json:"usage"`
		Lloom   *lloomJSON   `json:"lloom"`
		errorBody
	}
)

// decodeJSON decodes b into v, failing t with the body on error.
func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
}

// wantError fails t unless resp is an OpenAI-shaped error with this
// status, type and code; it returns the message.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, typ, code string) string {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
		t.Fatalf("status %d, body %q: want an OpenAI error object", resp.StatusCode, body)
	}
	if resp.StatusCode != status || e.Error.Type != typ || e.Error.Code != code {
		t.Fatalf("got %d %s/%s %q; want %d %s/%s", resp.StatusCode, e.Error.Type, e.Error.Code, e.Error.Message, status, typ, code)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error with Content-Type %q, want application/json", ct)
	}
	if e.Error.Message == "" {
		t.Error("error without a message")
	}
	return e.Error.Message
}

// sseEvents reads a whole server-sent event stream and returns the data of
// each event, in order; every line must be "data: …" or the blank line
// ending an event.
func sseEvents(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	blank := true
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if blank {
				t.Fatalf("two blank lines in a row after %q", out)
			}
			blank = true
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || !blank {
			t.Fatalf("line %q: want one data line per event", line)
		}
		blank = false
		out = append(out, data)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading the stream after %q: %v", out, err)
	}
	if !blank {
		t.Fatalf("stream ended inside an event after %q", out)
	}
	return out
}

// streamed is a streamed answer as a client reads it.
type streamed struct {
	chunks []answerJSON // every event but [DONE]
	text   string       // the text of every chunk, in order
	finish string       // the last finish_reason seen
	done   bool         // the last event was [DONE]
}

func readStream(t *testing.T, resp *http.Response) streamed {
	t.Helper()
	var s streamed
	events := sseEvents(t, resp.Body)
	for i, e := range events {
		if e == "[DONE]" {
			if i != len(events)-1 {
				t.Fatalf("[DONE] is event %d of %d: %q", i+1, len(events), events)
			}
			s.done = true
			continue
		}
		var c answerJSON
		decodeJSON(t, []byte(e), &c)
		s.chunks = append(s.chunks, c)
		for _, ch := range c.Choices {
			if ch.Delta != nil && ch.Delta.Content != nil {
				s.text += *ch.Delta.Content
			}
			if ch.Text != nil {
				s.text += *ch.Text
			}
			if ch.FinishReason != nil {
				s.finish = *ch.FinishReason
			}
		}
	}
	return s
}

// checkReceipt verifies the base64 receipt of an answer: signed by the
// executor the gateway named, made out to the gateway's client, over the
// text the client received. requestID nil takes the receipt's own (a
// streamed answer's id is not its request id).
func checkReceipt(t *testing.T, g *gw, b64, executorID string, requestID []byte, text string) {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) == 0 {
		t.Fatalf("receipt %q: not standard base64 with padding: %v", b64, err)
	}
	x, err := peer.Decode(executorID)
	if err != nil {
		t.Fatalf("executor %q: %v", executorID, err)
	}
	if requestID == nil {
		_, rec, err := record.ConsumeEnvelope(raw, lp.ReceiptDomain)
		if err != nil {
			t.Fatalf("receipt envelope: %v", err)
		}
		requestID = rec.(*lp.ReceiptRecord).GetRequestId()
	}
	if _, err := lp.VerifyReceipt(raw, lp.ReceiptClaim{
		Executor: x, Client: g.Client().Host().ID(), RequestID: requestID, ModelID: model, Text: text,
	}); err != nil {
		t.Fatalf("receipt does not verify: %v", err)
	}
}

// requestIDOf is the request id in a non-streamed answer's id.
func requestIDOf(t *testing.T, id string) []byte {
	t.Helper()
	_, h, ok := strings.Cut(id, "-")
	b, err := hex.DecodeString(h)
	if !ok || err != nil || len(b) != lp.RequestIDSize {
		t.Fatalf("answer id %q: want a prefix and the request id in hex", id)
	}
	return b
}

// waitModels waits until GET /v1/models lists exactly these ids.
func (g *gw) waitModels(t *testing.T, ids ...string) modelList {
	t.Helper()
	var list modelList
	nodetest.Eventually(t, fmt.Sprintf("GET /v1/models lists %v", ids), func() error {
		resp, body := g.do(t, t.Context(), http.MethodGet, "/v1/models", "")
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d: %s", resp.StatusCode, body)
		}
		list = modelList{}
		if err := json.Unmarshal(body, &list); err != nil {
			return fmt.Errorf("%q: %v", body, err)
		}
		var got []string
		for _, m := range list.Data {
			got = append(got, m.ID)
		}
		if strings.Join(got, ",") != strings.Join(ids, ",") {
			return fmt.Errorf("lists %v", got)
		}
		return nil
	})
	return list
}

type modelJSON struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	Lloom   struct {
		Executors  int `json:"executors"`
		Healthy    int `json:"healthy"`
		Overloaded int `json:"overloaded"`
	} `json:"lloom"`
}

type modelList struct {
	Object string      `json:"object"`
	Data   []modelJSON `json:"data"`
}
