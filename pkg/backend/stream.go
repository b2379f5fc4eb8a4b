package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Usage is the backend's token count for one completion.
type Usage struct {
	PromptTokens     uint32
	CompletionTokens uint32
}

// Result sums up a completed stream.
type Result struct {
	// FinishReason is the backend's: "stop", "length" or another it names;
	// from the last choice that carried one.
	FinishReason string
	// Usage is nil when the backend reported none.
	Usage *Usage
	// Deltas counts the non-empty text deltas passed to onDelta.
	Deltas int
}

// Stream runs req as a streamed completion and calls onDelta (if not nil)
// with every non-empty text delta, in order, as it arrives. The answer is
// complete only if the stream ends with "data: [DONE]" and some choice
// carried a finish_reason; anything else is a KindFailed *Error.
//
// If onDelta returns an error, Stream stops at once, closing the response
// so that the backend sees the request cancelled, and returns that error
// wrapped. If ctx ends, the request is cancelled the same way and Stream
// returns ctx's error, not an *Error. On every error the Result holds what
// arrived before it.
func (c *Client) Stream(ctx context.Context, req Request, onDelta func(text string) error) (Result, error) {
	path, body, err := req.encode()
	if err != nil {
		return Result{}, err
	}
	// Our own cancel, so that leaving early aborts the request on every
	// transport (closing the body alone may leave an HTTP/2 stream open).
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := c.do(rctx, http.MethodPost, path, body, "text/event-stream")
	if err != nil {
		return Result{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return Result{}, statusError(resp, c.now())
	}
	res, err := readStream(ctx, resp.Body, req.chat(), onDelta)
	if err != nil {
		var cbErr *callbackError
		var bErr *Error
		switch {
		case errors.As(err, &cbErr):
			return res, err
		case ctx.Err() != nil:
			return res, fmt.Errorf("backend: %w", ctx.Err())
		case errors.As(err, &bErr):
			return res, err
		}
		return res, failed("reading stream: "+err.Error(), err)
	}
	// Let the connection be reused: most servers end the body right after
	// [DONE]; a server that keeps writing is cut off by the deferred close.
	_, _ = io.CopyN(io.Discard, resp.Body, 4096)
	return res, nil
}

// readStream reads a completion's event stream up to [DONE], calling
// onDelta with each non-empty text delta. ctx is checked before each
// call, so that no delta is delivered after the caller gave up.
func readStream(ctx context.Context, r io.Reader, chat bool, onDelta func(string) error) (Result, error) {
	events := newEventReader(r)
	var res Result
	for {
		payload, err := events.next()
		switch {
		case errors.Is(err, errDone):
			if res.FinishReason == "" {
				return res, failed("stream ended without a finish_reason", nil)
			}
			return res, nil
		case errors.Is(err, io.EOF):
			return res, failed("stream ended before data: [DONE]", nil)
		case err != nil:
			return res, err
		}
		c, err := parseChunk(payload, chat)
		if err != nil {
			return res, failed(fmt.Sprintf("undecodable stream data %.80q: %v", payload, err), err)
		}
		if c.err != "" {
			return res, failed("error in stream: "+c.err, nil)
		}
		if c.usage != nil {
			res.Usage = c.usage
		}
		if c.finish != "" {
			res.FinishReason = c.finish
		}
		if c.text == "" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		res.Deltas++
		if onDelta != nil {
			if err := onDelta(c.text); err != nil {
				return res, &callbackError{err: err}
			}
		}
	}
}
