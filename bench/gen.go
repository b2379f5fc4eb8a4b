package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"time"
)

// ChildEnv names the environment variable that makes a test binary run as
// a load generator instead of running tests (see TestMain).
const ChildEnv = "LLOOM_BENCH_CHILD"

// Request is one command to the load generator, one JSON line on its
// standard input.
type Request struct {
	Op string `json:"op"` // connect, prepare, publish, schedule, query, flood, ack, stop, phase, close

	// connect: full multiaddrs (with /p2p/) of the peers to publish to.
	Addrs []string `json:"addrs,omitempty"`

	// prepare and schedule: the fleet.
	Executors int    `json:"executors,omitempty"`
	Seed      uint64 `json:"seed,omitempty"`
	// prepare: heartbeat rounds to pre-sign after the announcements.
	Rounds int `json:"rounds,omitempty"`

	// publish and schedule: at most Window messages published and not yet
	// finished by the node under test (it acknowledges with ack); 0 means
	// no limit. Rate bounds publish in messages per second (0: none).
	Window int     `json:"window,omitempty"`
	Rate   float64 `json:"rate,omitempty"`

	// schedule: heartbeats every Interval (jittered by ±10 %, as executors
	// do) for Duration, signed on the fly.
	Interval time.Duration `json:"interval,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`

	// ack: messages the node under test has finished with.
	Done uint64 `json:"done,omitempty"`

	// query: send Count of these marshaled QueryRequests round-robin to the
	// first peer connected, Concurrency at a time, each on a new stream of
	// the open connection. flood: the same until stop, counting answers
	// and refusals instead of failing on a refusal.
	Queries     [][]byte `json:"queries,omitempty"`
	Count       int      `json:"count,omitempty"`
	Concurrency int      `json:"concurrency,omitempty"`
}

// Reply is the generator's answer to one request.
type Reply struct {
	Op         string        `json:"op"`
	Err        string        `json:"err,omitempty"`
	Peer       string        `json:"peer,omitempty"`
	Messages   int           `json:"messages,omitempty"`   // prepared or published
	Heartbeats int           `json:"heartbeats,omitempty"` // schedule: heartbeats published
	Took       time.Duration `json:"took,omitempty"`       // wall time of the command
	CPU        time.Duration `json:"cpu,omitempty"`        // the generator's CPU time in it
	MaxLate    time.Duration `json:"max_late,omitempty"`   // schedule: worst lateness of a heartbeat
	// schedule: worst lateness in each phase (the parent starts a new one
	// with a phase request).
	PhaseLate   []time.Duration `json:"phase_late,omitempty"`
	PublishErrs int             `json:"publish_errs,omitempty"` // Publish calls that failed
	DroppedRPCs uint64          `json:"dropped_rpcs,omitempty"` // the generator's own full queues

	// query: each query's time from opening the stream to the decoded
	// response, in order, and the average response size.
	Latencies []time.Duration `json:"latencies,omitempty"`
	Bytes     int             `json:"bytes,omitempty"`
	// flood: queries refused with 4290 (Messages counts the answered).
	Limited int `json:"limited,omitempty"`
}

// Generator is the parent's handle on a load generator process.
type Generator struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	wmu  sync.Mutex
	out  *json.Decoder
	stop chan struct{}
	wg   sync.WaitGroup
}

// StartGenerator starts the running test binary again as a load generator.
func StartGenerator() (*Generator, error) {
	cmd, in, out, err := startSelf("^$", ChildEnv+"=gen")
	if err != nil {
		return nil, err
	}
	return &Generator{cmd: cmd, in: in, out: out, stop: make(chan struct{})}, nil
}

func (g *Generator) send(r Request) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	g.wmu.Lock()
	defer g.wmu.Unlock()
	_, err = g.in.Write(append(b, '\n'))
	return err
}

// Do sends a request and waits for its reply.
func (g *Generator) Do(r Request) (Reply, error) {
	wait, err := g.Start(r)
	if err != nil {
		return Reply{}, err
	}
	return wait()
}

// Start sends a request and returns a function that waits for its reply.
// Until then, only Stop may be sent.
func (g *Generator) Start(r Request) (wait func() (Reply, error), err error) {
	if err := g.send(r); err != nil {
		return nil, fmt.Errorf("generator %s: %w", r.Op, err)
	}
	return func() (Reply, error) {
		var rep Reply
		if err := g.out.Decode(&rep); err != nil {
			return Reply{}, fmt.Errorf("generator %s: no reply: %w", r.Op, err)
		}
		if rep.Err != "" {
			return rep, fmt.Errorf("generator %s: %s", r.Op, rep.Err)
		}
		return rep, nil
	}, nil
}

// Stop ends a running schedule early; its reply follows.
func (g *Generator) Stop() error { return g.send(Request{Op: "stop"}) }

// Phase starts a new phase of a running schedule, whose lateness the reply
// reports apart.
func (g *Generator) Phase() error { return g.send(Request{Op: "phase"}) }

// Acknowledge tells the generator every few milliseconds how many messages
// the node under test has finished with, for closed-loop publishing, until
// Close.
func (g *Generator) Acknowledge(done func() uint64) {
	g.wg.Go(func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		var last uint64
		for {
			select {
			case <-g.stop:
				return
			case <-t.C:
				if n := done(); n != last {
					last = n
					if g.send(Request{Op: "ack", Done: n}) != nil {
						return
					}
				}
			}
		}
	})
}

// Close stops the generator and waits for it to exit.
func (g *Generator) Close() error {
	close(g.stop)
	g.wg.Wait()
	_ = g.send(Request{Op: "close"})
	return endChild(g.cmd, g.in, 10*time.Second)
}
