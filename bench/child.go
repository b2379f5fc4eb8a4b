package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/node"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// RunGenerator is the generator process: it reads requests from stdin and
// answers each on stdout until close or end of input.
func RunGenerator(stdin io.Reader, stdout io.Writer) error {
	gen := &child{}
	reqs := make(chan Request)
	errc := make(chan error, 1)
	go func() {
		dec := json.NewDecoder(bufio.NewReader(stdin))
		for {
			var r Request
			if err := dec.Decode(&r); err != nil {
				close(reqs)
				if !errors.Is(err, io.EOF) {
					errc <- err
				}
				return
			}
			switch r.Op {
			case "ack":
				gen.done.Store(r.Done)
				continue
			case "stop":
				gen.stop.Store(true)
				continue
			case "phase":
				gen.phase.Add(1)
				continue
			}
			reqs <- r
		}
	}()
	enc := json.NewEncoder(stdout)
	defer gen.close()
	for r := range reqs {
		if r.Op == "close" {
			return nil
		}
		cpu, start := CPUTime(), time.Now()
		rep := gen.handle(r)
		rep.Op, rep.Took, rep.CPU = r.Op, time.Since(start), CPUTime()-cpu
		if gen.g != nil {
			rep.DroppedRPCs = gen.g.Tracer.Dropped().RPCs
		}
		if err := enc.Encode(rep); err != nil {
			return err
		}
	}
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// child is the generator's state: one bare peer on the topic, as
// node.JoinRaw makes it (lloom's GossipSub settings, no validator of its
// own), publishing for many executor identities.
type child struct {
	h     host.Host
	g     *node.Gossip
	msgs  [][]byte
	done  atomic.Uint64 // acknowledged by the parent
	stop  atomic.Bool   // schedule ends early
	phase atomic.Int32  // schedule's current phase
	sent  uint64
	peers []peer.ID // connected to, in order
}

func (c *child) close() {
	if c.g != nil {
		c.g.Close()
	}
	if c.h != nil {
		c.h.Close()
	}
}

func (c *child) handle(r Request) Reply {
	var err error
	var rep Reply
	switch r.Op {
	case "connect":
		err = c.connect(r.Addrs)
		if c.h != nil {
			rep.Peer = c.h.ID().String()
		}
	case "prepare":
		xs := NewFleet(r.Executors, r.Seed)
		c.msgs, err = Messages(xs, r.Rounds, time.Now())
		rep.Messages = len(c.msgs)
	case "publish":
		rep.Messages, rep.PublishErrs = c.publish(c.msgs, r.Window, r.Rate)
	case "schedule":
		rep, err = c.schedule(r)
	case "query":
		rep, err = c.query(r)
	case "flood":
		rep, err = c.flood(r)
	default:
		err = fmt.Errorf("unknown op %q", r.Op)
	}
	if err != nil {
		rep.Err = err.Error()
	}
	return rep
}

func (c *child) connect(addrs []string) error {
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return err
	}
	if c.h, err = node.NewHost(node.HostConfig{Key: key, Listen: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}, UserAgent: "lloom-bench"}); err != nil {
		return err
	}
	if c.g, err = node.JoinRaw(c.h, lp.DefaultNetwork); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, s := range addrs {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return err
		}
		c.peers = append(c.peers, ai.ID)
		if err := c.h.Connect(ctx, *ai); err != nil {
			return err
		}
	}
	for len(c.g.Topic.ListPeers()) < len(addrs) {
		if ctx.Err() != nil {
			return fmt.Errorf("%d of %d peers joined the topic", len(c.g.Topic.ListPeers()), len(addrs))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// waitWindow blocks while window messages are in flight.
func (c *child) waitWindow(window int) {
	if window <= 0 {
		return
	}
	for c.sent-c.done.Load() >= uint64(window) {
		time.Sleep(200 * time.Microsecond)
	}
}

// publish publishes msgs in order, closed-loop within window and paced at
// rate (0: unpaced).
func (c *child) publish(msgs [][]byte, window int, rate float64) (sent, errs int) {
	start := time.Now()
	for i, m := range msgs {
		c.waitWindow(window)
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		if err := c.g.Topic.Publish(context.Background(), m); err != nil {
			errs++
			continue
		}
		c.sent++
		sent++
	}
	return sent, errs
}

// schedule announces a fleet, then sends each executor's heartbeats every
// interval ±10 % from a random phase for the duration, signing each when it
// is due. It reports how late the latest heartbeat left, so that a
// generator that cannot keep up is not mistaken for a slow validator.
func (c *child) schedule(r Request) (Reply, error) {
	xs := NewFleet(r.Executors, r.Seed)
	anns := make([][]byte, len(xs))
	var firstErr error
	var mu sync.Mutex
	Parallel(len(xs), func(i int) {
		_, m, err := xs[i].Announce(pb.AnnouncementKind_ANNOUNCEMENT_KIND_INITIAL, time.Now())
		anns[i] = m
		if err != nil {
			mu.Lock()
			firstErr = err
			mu.Unlock()
		}
	})
	if firstErr != nil {
		return Reply{}, firstErr
	}
	n, errs := c.publish(anns, r.Window, 0)
	rep := Reply{Messages: n, PublishErrs: errs}

	rng := rand.New(rand.NewPCG(r.Seed, 7))
	due := make([]time.Time, len(xs))
	start := time.Now()
	for i := range due {
		due[i] = start.Add(time.Duration(rng.Int64N(int64(r.Interval))))
	}
	h := &dueHeap{due: due, idx: make([]int, len(xs))}
	for i := range h.idx {
		h.idx[i] = i
	}
	h.init()
	end := start.Add(r.Duration)
	c.stop.Store(false)
	c.phase.Store(0)
	for !c.stop.Load() {
		i := h.idx[0]
		at := due[i]
		if at.After(end) {
			break
		}
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		now := time.Now()
		rep.MaxLate = max(rep.MaxLate, now.Sub(at))
		ph := int(c.phase.Load())
		for ph >= len(rep.PhaseLate) {
			rep.PhaseLate = append(rep.PhaseLate, 0)
		}
		rep.PhaseLate[ph] = max(rep.PhaseLate[ph], now.Sub(at))
		m, err := xs[i].Heartbeat(now)
		if err == nil {
			err = c.g.Topic.Publish(context.Background(), m)
		}
		if err != nil {
			rep.PublishErrs++
		} else {
			c.sent++
			rep.Heartbeats++
		}
		iv := r.Interval
		due[i] = at.Add(iv - iv/10 + time.Duration(rng.Int64N(int64(iv/5+1))))
		h.fix()
	}
	return rep, nil
}

// dueHeap orders executors by their next heartbeat, earliest first.
type dueHeap struct {
	due []time.Time
	idx []int // a min-heap of executor indexes by due
}

func (h *dueHeap) less(a, b int) bool { return h.due[h.idx[a]].Before(h.due[h.idx[b]]) }

func (h *dueHeap) init() {
	for i := len(h.idx)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

// fix restores the heap after the root's due time grew.
func (h *dueHeap) fix() { h.down(0) }

func (h *dueHeap) down(i int) {
	n := len(h.idx)
	for {
		m := i
		if l := 2*i + 1; l < n && h.less(l, m) {
			m = l
		}
		if r := 2*i + 2; r < n && h.less(r, m) {
			m = r
		}
		if m == i {
			return
		}
		h.idx[i], h.idx[m] = h.idx[m], h.idx[i]
		i = m
	}
}

// query runs the request's queries against the first peer and times each.
func (c *child) query(r Request) (Reply, error) {
	if len(c.peers) == 0 || len(r.Queries) == 0 {
		return Reply{}, errors.New("query: no peer or no queries")
	}
	lat := make([]time.Duration, r.Count)
	var bytes atomic.Int64
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range max(r.Concurrency, 1) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= r.Count {
					return
				}
				start := time.Now()
				b, err := node.Call(context.Background(), c.h, c.peers[0], lp.QueryProtocol, r.Queries[i%len(r.Queries)], lp.MaxResponseSize, 10*time.Second)
				var resp pb.QueryResponse
				if err == nil {
					err = proto.Unmarshal(b, &resp)
				}
				if err == nil && resp.GetErrorCode() != 0 {
					err = fmt.Errorf("query error %d: %s", resp.GetErrorCode(), resp.GetErrorMessage())
				}
				lat[i] = time.Since(start)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				bytes.Add(int64(len(b)))
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return Reply{}, err
	}
	return Reply{Messages: r.Count, Latencies: lat, Bytes: int(bytes.Load()) / r.Count}, nil
}
