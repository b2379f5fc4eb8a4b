// Package slots admits an executor's requests to a model: at most
// capacity run at once, up to queue more wait in order of arrival, and
// anything beyond is refused at once. Its counts are the load that the
// executor's heartbeats report.
package slots

import (
	"context"
	"errors"
	"sync"
)

// ErrFull is returned when every slot is taken and the queue is full.
var ErrFull = errors.New("slots: capacity and queue full")

// Load is a gate's state at one moment.
type Load struct {
	Active, Queued, Capacity, Queue uint32
}

// Overloaded reports whether active and queued requests reach capacity,
// which is how validators classify an executor's model.
func (l Load) Overloaded() bool {
	return l.Capacity > 0 && uint64(l.Active)+uint64(l.Queued) >= uint64(l.Capacity)
}

// Gate admits requests to one model. It is safe for concurrent use.
type Gate struct {
	onChange func(Load) // called after every change, outside the lock
	// notify serializes onChange calls, each reporting the load current
	// when it runs, so that the last report is the last load: reports of
	// loads computed under mu could arrive out of order and leave a stale
	// count in the heartbeats.
	notify sync.Mutex

	mu       sync.Mutex
	capacity uint32          // guarded by mu
	queue    uint32          // guarded by mu
	active   uint32          // guarded by mu
	waiters  []chan struct{} // guarded by mu: queued requests, oldest first
}

// New returns a gate; onChange (may be nil) sees every new load.
func New(capacity, queue uint32, onChange func(Load)) *Gate {
	return &Gate{capacity: capacity, queue: queue, onChange: onChange}
}

// Load returns the current counts.
func (g *Gate) Load() Load {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.loadLocked()
}

func (g *Gate) loadLocked() Load {
	return Load{Active: g.active, Queued: uint32(len(g.waiters)), Capacity: g.capacity, Queue: g.queue}
}

// Resize changes capacity and queue; requests already admitted keep their
// slots, and waiters are admitted if the new capacity has room.
func (g *Gate) Resize(capacity, queue uint32) {
	g.mu.Lock()
	g.capacity, g.queue = capacity, queue
	g.admitLocked()
	g.mu.Unlock()
	g.changed()
}

// Acquire takes a slot, waiting in the queue when all are taken, until ctx
// ends. It returns ErrFull at once when the queue is full too. The release
// function must be called exactly once when the request is done.
func (g *Gate) Acquire(ctx context.Context) (release func(), err error) {
	g.mu.Lock()
	if g.active < g.capacity && len(g.waiters) == 0 {
		g.active++
		g.mu.Unlock()
		g.changed()
		return g.releaser(), nil
	}
	if uint32(len(g.waiters)) >= g.queue {
		g.mu.Unlock()
		return nil, ErrFull
	}
	ready := make(chan struct{})
	g.waiters = append(g.waiters, ready)
	g.mu.Unlock()
	g.changed()

	select {
	case <-ready:
		return g.releaser(), nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	for i, w := range g.waiters {
		if w == ready {
			g.waiters = append(g.waiters[:i], g.waiters[i+1:]...)
			g.mu.Unlock()
			g.changed()
			return nil, ctx.Err()
		}
	}
	// Admitted just as ctx ended: give the slot back.
	g.mu.Unlock()
	g.releaser()()
	return nil, ctx.Err()
}

func (g *Gate) releaser() func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.active--
			g.admitLocked()
			g.mu.Unlock()
			g.changed()
		})
	}
}

// admitLocked moves waiters into free slots, oldest first.
func (g *Gate) admitLocked() {
	for g.active < g.capacity && len(g.waiters) > 0 {
		close(g.waiters[0])
		g.waiters = g.waiters[1:]
		g.active++
	}
}

func (g *Gate) changed() {
	if g.onChange == nil {
		return
	}
	g.notify.Lock()
	defer g.notify.Unlock()
	g.onChange(g.Load())
}
