package executor

import (
	"context"
	"hash"
	"sync"
)

// maxPending bounds the text waiting for the stream: past it the backend's
// reader waits, and so does the backend, until the client reads.
const maxPending = 256 << 10

// pump passes the backend's text to the stream from its own goroutine.
// Text that arrives while a frame is being written goes out together in
// the next frame, so a fast backend costs one frame per write rather than
// one per token, while a slow one still has every token sent at once.
type pump struct {
	a      *answer
	digest hash.Hash
	done   chan struct{}

	mu      sync.Mutex
	cond    *sync.Cond
	pending []byte // guarded by mu
	closed  bool   // guarded by mu: no more text will come
	err     error  // guarded by mu: why text can no longer be sent
}

// newPump starts the writer; ctx ending makes add fail at once.
func newPump(ctx context.Context, a *answer, digest hash.Hash) (*pump, func() bool) {
	p := &pump{a: a, digest: digest, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	stop := context.AfterFunc(ctx, func() { p.abort(context.Cause(ctx)) })
	go p.run()
	return p, stop
}

// add queues text; it waits while maxPending bytes are queued.
func (p *pump) add(text string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.pending) >= maxPending && p.err == nil {
		p.cond.Wait()
	}
	if p.err != nil {
		return p.err
	}
	p.pending = append(p.pending, text...)
	p.cond.Broadcast()
	return nil
}

func (p *pump) abort(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *pump) run() {
	defer close(p.done)
	var buf []byte
	for {
		p.mu.Lock()
		for len(p.pending) == 0 && !p.closed && p.err == nil {
			p.cond.Wait()
		}
		if p.err != nil || len(p.pending) == 0 {
			p.mu.Unlock()
			return
		}
		buf, p.pending = p.pending, buf[:0]
		p.cond.Broadcast()
		p.mu.Unlock()
		if err := p.a.chunk(string(buf), p.digest); err != nil {
			p.abort(err)
			return
		}
	}
}

// close waits until every queued byte is written, and reports why not.
func (p *pump) close() error {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}
