package gateway_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/node/executor"
	"github.com/lloom/lloom/node/gateway"
	"github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/pkg/backend/backendtest"
	"github.com/lloom/lloom/protocol/pb"
)

// GET /v1/models lists what a user can use now: a model with live
// executors, counted, and not one whose only executor is stale or whose
// backend is down.
func TestModelsListsOnlyModelsWithALiveExecutor(t *testing.T) {
	live := backendtest.New(t, backendtest.WithModels(model))
	silent := backendtest.New(t, backendtest.WithModels("stale-model"))
	down := backendtest.New(t, backendtest.WithModels("down-model"))
	down.SetDown(true)
	v := startValidator(t, func(c *validator.Config) {
		c.Registry.StaleAfter = time.Second
		c.Registry.RemoveAfter = time.Minute
	})
	serve(t, v, live, 4, nil)
	serve(t, v, live, 2, nil)
	serveModel(t, v, silent, nodetest.Model("stale-model", 1), func(c *executor.Config) { c.HeartbeatInterval = time.Hour })
	serveModel(t, v, down, nodetest.Model("down-model", 1), nil)

	c := nodetest.NewClient(t, v)
	nodetest.Eventually(t, "stale-model's only executor stale, down-model's unavailable", func() error {
		res, err := c.FindModel(t.Context(), "stale-model", &pb.QueryFilters{IncludeStale: true, IncludeUnavailable: true})
		if err != nil {
			return err
		}
		if len(res.Executors) != 1 || res.Executors[0].Status != pb.ExecutorStatus_EXECUTOR_STATUS_STALE {
			return fmt.Errorf("stale-model: %d executors, want 1 stale", len(res.Executors))
		}
		res, err = c.FindModel(t.Context(), "down-model", &pb.QueryFilters{IncludeStale: true, IncludeUnavailable: true})
		if err != nil {
			return err
		}
		if len(res.Executors) != 1 || res.Executors[0].Model.GetAvailable() {
			return fmt.Errorf("down-model: %d executors, want 1 unavailable", len(res.Executors))
		}
		return nil
	})

	// A gateway started now answers from its first refresh.
	g := startGateway(t, v, nil)
	resp, body := g.do(t, t.Context(), http.MethodGet, "/v1/models", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/models: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var list modelList
	decodeJSON(t, body, &list)
	if list.Object != "list" || len(list.Data) != 1 {
		t.Fatalf("GET /v1/models: %s; want a list of %s alone", body, model)
	}
	m := list.Data[0]
	if m.ID != model || m.Object != "model" || m.OwnedBy != "lloom" || m.Created <= 0 ||
		m.Lloom.Executors != 2 || m.Lloom.Healthy != 2 || m.Lloom.Overloaded != 0 {
		t.Errorf("GET /v1/models: %s; want %s owned by lloom with 2 healthy executors", body, model)
	}

	resp, body = g.do(t, t.Context(), http.MethodGet, "/v1/models/"+model, "")
	var one modelJSON
	decodeJSON(t, body, &one)
	if resp.StatusCode != http.StatusOK || one != m {
		t.Errorf("GET /v1/models/%s: %d %s; want the list's entry %+v", model, resp.StatusCode, body, m)
	}
	for _, id := range []string{"stale-model", "down-model", "no-such-model"} {
		resp, body := g.do(t, t.Context(), http.MethodGet, "/v1/models/"+id, "")
		wantError(t, resp, body, http.StatusNotFound, "invalid_request_error", "model_not_found")
	}

	// The list follows the network without a restart.
	late := backendtest.New(t, backendtest.WithModels("late-model"))
	serveModel(t, v, late, nodetest.Model("late-model", 1), nil)
	g.waitModels(t, "late-model", model)
}

// A program may serve Handler itself, without Run: the model list is then
// read when asked for, not never.
func TestHandlerServedWithoutRun(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithModels(model))
	v := startValidator(t, nil)
	serve(t, v, fake, 4, nil)
	cfg := gateway.DefaultConfig()
	cfg.Client.Validators = nodetest.Bootstraps(t, v)
	cfg.ModelsRefresh = 100 * time.Millisecond
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	h := &gw{Gateway: g, url: srv.URL}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, body := h.do(t, ctx, http.MethodGet, "/v1/models", "")
	var list modelList
	decodeJSON(t, body, &list)
	if resp.StatusCode != http.StatusOK || len(list.Data) != 1 || list.Data[0].ID != model {
		t.Fatalf("GET /v1/models: %d %s; want %s listed", resp.StatusCode, body, model)
	}
	late := backendtest.New(t, backendtest.WithModels("late-model"))
	serveModel(t, v, late, nodetest.Model("late-model", 1), nil)
	h.waitModels(t, "late-model", model)
	if resp, body := h.post(t, "/v1/chat/completions", chatBody("hi", "")); resp.StatusCode != http.StatusOK {
		t.Errorf("chat through Handler: %d %s", resp.StatusCode, body)
	}
}

// The model list follows the validator's change feed: with a refresh
// period of an hour, a model whose executor joins appears, and one whose
// executor withdraws goes, within seconds.
func TestModelsFollowTheChangeFeed(t *testing.T) {
	v := startValidator(t, nil)
	g := startGateway(t, v, func(c *gateway.Config) { c.ModelsRefresh = time.Hour })
	g.waitModels(t) // the first read: nothing served yet

	fake := backendtest.New(t, backendtest.WithModels(model))
	e := serve(t, v, fake, 2, nil)
	g.waitModels(t, model)

	if err := e.Close(); err != nil { // its REMOVAL reaches the validator
		t.Fatal(err)
	}
	g.waitModels(t)
}

// A gateway started before its validator lists the models soon after the
// validator comes up, not a whole refresh period (here an hour) later.
func TestModelsOnceTheValidatorComesUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	peers, err := node.ParseBootstrapPeers(fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, nil, func(c *gateway.Config) {
		c.Client.Validators = peers
		c.ModelsRefresh = time.Hour
	})
	if resp, _ := g.do(t, t.Context(), http.MethodGet, "/v1/models", ""); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("GET /v1/models with no validator up: %d, want 502", resp.StatusCode)
	}
	v := startValidator(t, func(c *validator.Config) {
		c.Listen = []ma.Multiaddr{ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))}
	})
	serve(t, v, backendtest.New(t, backendtest.WithModels(model)), 2, nil)
	g.waitModels(t, model)
}
