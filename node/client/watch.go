package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"time"

	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// WatchOptions says what a Watch follows.
type WatchOptions struct {
	// Model, if set, limits the feed to executors serving it.
	Model string
	// IncludeUnverified also shows executors not yet verified.
	IncludeUnverified bool
	// AfterVersion resumes after a version an earlier watch of the same
	// validator handed out; 0 starts from a snapshot.
	AfterVersion uint64
}

// Watch follows the change feed (/lloom/watch/1.0.0) of the first of the
// client's validators that answers, handing fn each event in order, with
// the index of the validator it came from, until ctx ends (Watch then
// returns nil) or fn returns an error (returned as it is). The feed is
// the validator's view, unsigned: for observing the network, not for
// choosing executors (find-model's envelopes are for that).
//
// After a disconnect, or when the validator cuts a subscriber that fell
// behind, Watch reconnects with backoff and resumes after the last version
// it handed out; a validator that no longer holds the changes after it
// sends a fresh snapshot (SNAPSHOT events, then SYNCED with snapshot set):
// a view built from the events is then replaced. A validator that cannot
// be reached is left for the next one, which starts from a snapshot. A
// request the validator refuses (another network, a bad model id) ends
// Watch with an error matching the protocol's sentinel.
func (c *Client) Watch(ctx context.Context, opts WatchOptions, fn func(validator int, ev *pb.WatchEvent) error) error {
	if opts.Model != "" && !lp.ValidModelID(opts.Model) {
		return lp.Errorf(lp.ErrMalformed.Code, "model id %q: want 1-128 characters of [A-Za-z0-9._:/@-]", opts.Model)
	}
	req := &pb.WatchRequest{
		AfterVersion:      opts.AfterVersion,
		ModelId:           opts.Model,
		IncludeUnverified: opts.IncludeUnverified,
		Network:           c.cfg.Network,
	}
	i := 0
	backoff := minWatchBackoff
	for {
		last, synced, err := c.watchOnce(ctx, i, req, fn)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, new(handlerError)):
			return err.(handlerError).err
		case errors.Is(err, lp.ErrWrongNetwork), errors.Is(err, lp.ErrMalformed):
			return err
		}
		if last != 0 {
			req.AfterVersion = last
		}
		if synced {
			backoff = minWatchBackoff
		} else if len(c.cfg.Validators) > 1 {
			// Not reached, or refused at once: the next one, from a
			// snapshot (versions are each validator's own).
			i = (i + 1) % len(c.cfg.Validators)
			req.AfterVersion = 0
		}
		c.log.Info().Err(err).Str("validator", c.cfg.Validators[i].Raw).Dur("retry_in", backoff).Msg("Change feed interrupted; reconnecting")
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, maxWatchBackoff)
	}
}

const (
	minWatchBackoff = 200 * time.Millisecond
	maxWatchBackoff = 5 * time.Second
)

// handlerError is the error of the caller's fn.
type handlerError struct{ err error }

func (h handlerError) Error() string { return h.err.Error() }

// watchOnce runs one subscription to validator i. It returns the last
// version it may resume after (0: none), whether the feed got in sync,
// and why it ended.
func (c *Client) watchOnce(ctx context.Context, i int, req *pb.WatchRequest, fn func(int, *pb.WatchEvent) error) (last uint64, synced bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	id, err := c.resolve(cctx, i, nil)
	if err != nil {
		cancel()
		return 0, false, err
	}
	s, err := c.h.NewStream(cctx, id, lp.WatchProtocol)
	cancel()
	if err != nil {
		return 0, false, fmt.Errorf("open %s stream to %s: %w", lp.WatchProtocol, id, err)
	}
	// Our side stays open: closing it is how the validator would learn
	// that we left; a reset ends the subscription for both sides.
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	defer s.Reset()
	_ = s.SetWriteDeadline(time.Now().Add(c.cfg.Timeout))
	if err := lp.WriteMessage(s, req); err != nil {
		return 0, false, fmt.Errorf("send watch request to %s: %w", id, err)
	}
	r := bufio.NewReader(s)
	for {
		var ev pb.WatchEvent
		if err := lp.ReadMessage(r, lp.MaxWatchEventSize, &ev); err != nil {
			return last, synced, fmt.Errorf("watch %s: %w", id, err)
		}
		if err := fn(i, &ev); err != nil {
			return last, synced, handlerError{err}
		}
		switch ev.GetKind() {
		case pb.WatchEventKind_WATCH_EVENT_KIND_SNAPSHOT:
			// Not a point to resume from until SYNCED ends the snapshot.
		case pb.WatchEventKind_WATCH_EVENT_KIND_ERROR:
			return last, synced, lp.ErrorFromResponse(ev.GetErrorCode(), ev.GetErrorMessage())
		case pb.WatchEventKind_WATCH_EVENT_KIND_SYNCED:
			synced = true
			last = ev.GetVersion()
		default:
			last = ev.GetVersion()
		}
	}
}
