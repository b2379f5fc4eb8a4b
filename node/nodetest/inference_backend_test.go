package nodetest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/node/executor"
	. "github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/pkg/backend/backendtest"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// backAgain is the contract's bound on a model coming back once its
// backend answers again (the executor probes every few seconds; these
// tests probe faster).
const backAgain = 10 * time.Second

// A backend that goes down fails the request with 6003 at once, and the
// executor announces the model unavailable (so clients skip it); when the
// backend is back, the model is available and served again, without a
// restart.
func TestBackendDownAndBack(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithModels("m1"))
	v, _ := StartValidator(t, nil)
	e := startServing(t, v, fake, []*pb.ModelDescriptor{Model("m1", 2)}, func(c *executor.Config) {
		c.Backend.ProbeInterval = 200 * time.Millisecond
	})
	c := NewClient(t, v)
	x := candidates(t, c, "m1")[e.ID()]

	fake.SetDown(true)
	start := time.Now()
	ans, err := c.Infer(context.Background(), chatRequest("m1", "hi"), nil)
	wantCode(t, "request to a dead backend", err, lp.ErrBackendFailed.Code)
	if took := time.Since(start); took > hangGuard {
		t.Fatalf("6003 took %s: want it at once", took)
	}
	if len(ans.Attempts) != 1 || ans.Text != "" {
		t.Fatalf("answer %q attempts %+v: want one failed attempt and no text", ans.Text, ans.Attempts)
	}
	Eventually(t, "UPDATE: model unavailable", seesAvailable(v, e.ID(), "m1", false))
	// Clients skip it now; asked anyway, it refuses without calling the
	// backend.
	if _, err := c.Infer(context.Background(), chatRequest("m1", "hi"), nil); !errors.Is(err, client.ErrNoExecutor) {
		t.Fatalf("request while the only executor is unavailable: %v, want %v", err, client.ErrNoExecutor)
	}
	_, err = c.InferOn(context.Background(), []*client.Executor{x}, chatRequest("m1", "hi"), nil, nil, time.Now())
	wantCode(t, "request sent to the unavailable model anyway", err, lp.ErrBackendFailed.Code)

	fake.SetDown(false)
	EventuallyWithin(t, backAgain, "UPDATE: model available again", seesAvailable(v, e.ID(), "m1", true))
	if ans, err := c.Infer(context.Background(), chatRequest("m1", "hi"), nil); err != nil || ans.Receipt == nil {
		t.Fatalf("request once the backend is back: %v", err)
	}
}

// A backend that no longer knows the model (404) gets 6001, and the
// executor announces without the model; when the backend lists it again,
// the model is announced and served again.
func TestBackendForgetsModel(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithModels("m1", "m2"))
	v, _ := StartValidator(t, nil)
	e := startServing(t, v, fake, []*pb.ModelDescriptor{Model("m1", 2), Model("m2", 2)}, func(c *executor.Config) {
		c.Backend.ListInterval = 200 * time.Millisecond
	})
	c := NewClient(t, v)

	fake.SetModels("m2")
	_, err := c.Infer(context.Background(), chatRequest("m1", "hi"), nil)
	wantCode(t, "request for a model the backend forgot", err, lp.ErrModelNotServed.Code)
	Eventually(t, "UPDATE without the model", Registered(v, e.ID(), "m2"))

	fake.SetModels("m1", "m2")
	EventuallyWithin(t, backAgain, "UPDATE with the model again", Registered(v, e.ID(), "m1", "m2"))
	if ans, err := c.Infer(context.Background(), chatRequest("m1", "hi"), nil); err != nil || ans.Receipt == nil {
		t.Fatalf("request once the backend lists the model again: %v", err)
	}
}

// An answer the engine cuts (its stream ends without [DONE]) fails with
// 6003, but a backend that still answers keeps its models available: one
// broken answer must not take the model off the network.
func TestCutAnswerFromALiveBackend(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithModels("m1"))
	v, _ := StartValidator(t, nil)
	e := startServing(t, v, fake, []*pb.ModelDescriptor{Model("m1", 2)}, nil)
	c := NewClient(t, v)
	seq := e.AnnouncementSeq()

	fake.SetCutAfter(2)
	ans, err := c.Infer(context.Background(), chatRequest("m1", "hi"), nil)
	wantCode(t, "a cut answer", err, lp.ErrBackendFailed.Code)
	if ans.Text == "" {
		t.Fatal("the text before the cut was not reported")
	}
	fake.SetCutAfter(-1)
	EventuallyWithin(t, hangGuard, "the slot freed after the backend was asked", idle(e, "m1"))
	if e.AnnouncementSeq() != seq {
		t.Fatal("a cut answer from a live backend changed the announcement (model taken off the network)")
	}
	if err := seesAvailable(v, e.ID(), "m1", true)(); err != nil {
		t.Fatal(err)
	}
	if ans, err := c.Infer(context.Background(), chatRequest("m1", "hi"), nil); err != nil || ans.Receipt == nil {
		t.Fatalf("the next request: %v", err)
	}
}
