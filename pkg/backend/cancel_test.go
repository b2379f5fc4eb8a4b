package backend_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lloom/lloom/pkg/backend"
	"github.com/lloom/lloom/pkg/backend/backendtest"
)

// notBackendError fails t if err is a classified backend failure: a caller
// that gave up must not mark the model unavailable.
func notBackendError(t *testing.T, err error) {
	t.Helper()
	var e *backend.Error
	if errors.As(err, &e) {
		t.Fatalf("err = %v is a *backend.Error (kind %v); the backend did nothing wrong", err, e.Kind)
	}
}

func TestCancelMidStream(t *testing.T) {
	f := backendtest.New(t)
	f.SetDelay(0, time.Hour) // the first token at once, the second never
	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan struct{})
	go func() { <-first; cancel() }()
	var text string
	res, err := newClient(t, f.URL(), "").Stream(ctx, chatReq("test-model", "hi"), func(s string) error {
		if text == "" {
			close(first)
		}
		text += s
		return nil
	})
	if !errors.Is(err, context.Canceled) || text != "w0" || res.Deltas != 1 {
		t.Fatalf("got %q, %+v, %v; want w0, 1 delta, context.Canceled", text, res, err)
	}
	notBackendError(t, err)
	f.WaitCancelled(t, 1, within) // the backend saw the request go away
	f.WaitActive(t, 0, within)
}

func TestCancelBeforeFirstChunk(t *testing.T) {
	f := backendtest.New(t)
	release := f.Block()
	defer release()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := newClient(t, f.URL(), "").Stream(ctx, chatReq("test-model", "hi"), nil)
		errc <- err
	}()
	f.WaitActive(t, 1, within)
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	notBackendError(t, err)
	f.WaitCancelled(t, 1, within)
}

func TestDeadlineWhileQueued(t *testing.T) {
	f := backendtest.New(t)
	defer f.Block()()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := newClient(t, f.URL(), "").Stream(ctx, chatReq("test-model", "hi"), nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	notBackendError(t, err)
	f.WaitCancelled(t, 1, within)
}

func TestCancelledBeforeStart(t *testing.T) {
	f := backendtest.New(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := newClient(t, f.URL(), "").Stream(ctx, chatReq("test-model", "hi"), nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	notBackendError(t, err)
}

func TestDeltaErrorStops(t *testing.T) {
	f := backendtest.New(t)
	f.SetDelay(0, time.Hour)
	errStop := errors.New("client went away")
	calls := 0
	res, err := newClient(t, f.URL(), "").Stream(t.Context(), backend.Request{Model: "test-model", Prompt: "p"}, func(string) error {
		calls++
		return errStop
	})
	if !errors.Is(err, errStop) || calls != 1 || res.Deltas != 1 {
		t.Fatalf("err %v after %d calls (%d deltas); want errStop after exactly 1", err, calls, res.Deltas)
	}
	notBackendError(t, err)
	f.WaitCancelled(t, 1, within) // the request was cancelled, not left running
}
