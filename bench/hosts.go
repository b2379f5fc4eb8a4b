package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/node/executor"
	"github.com/lloom/lloom/protocol/pb"
)

// The real-connection scale test runs real lloom executors — each its own
// libp2p host with its own connection to the validator, answering the
// validator's liveness check like any executor — in child processes (the
// test binary started again with ChildEnv=hosts), a few hundred per
// process, so that a thousand of them fit on a small machine and the
// validator's CPU and memory are the parent's alone.

// HostsRequest is one command to a hosts process, one JSON line on its
// standard input.
type HostsRequest struct {
	Op string `json:"op"` // start, stats, close

	// start: Executors executors bootstrapping from Validator (a full
	// multiaddr), heartbeating every Interval, started at Rate per second;
	// First numbers the first one (its model is "real-<n mod 10>").
	Validator string        `json:"validator,omitempty"`
	Executors int           `json:"executors,omitempty"`
	First     int           `json:"first,omitempty"`
	Interval  time.Duration `json:"interval,omitempty"`
	Rate      float64       `json:"rate,omitempty"`
}

// HostsReply is a hosts process's answer to one request.
type HostsReply struct {
	Op  string `json:"op"`
	Err string `json:"err,omitempty"`
	// Connected counts executors connected to the validator now.
	Connected int `json:"connected"`
	// Opened and Closed count connections to the validator opened and
	// closed since start, over all executors.
	Opened uint64 `json:"opened"`
	Closed uint64 `json:"closed"`
	// CPU is the process's CPU time since it started.
	CPU time.Duration `json:"cpu"`
	// RSS is the process's resident set size, bytes.
	RSS uint64 `json:"rss"`
}

// RunHosts is the hosts process: it answers requests from stdin on stdout
// until close or end of input.
func RunHosts(stdin io.Reader, stdout io.Writer) error {
	hs := &hosts{}
	defer hs.close()
	dec := json.NewDecoder(bufio.NewReader(stdin))
	enc := json.NewEncoder(stdout)
	for {
		var r HostsRequest
		if err := dec.Decode(&r); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		var rep HostsReply
		var err error
		switch r.Op {
		case "start":
			err = hs.start(r)
		case "stats":
		case "close":
			hs.close()
		default:
			err = fmt.Errorf("unknown op %q", r.Op)
		}
		rep = hs.stats()
		rep.Op = r.Op
		if err != nil {
			rep.Err = err.Error()
		}
		if err := enc.Encode(rep); err != nil {
			return err
		}
		if r.Op == "close" {
			return nil
		}
	}
}

// hosts is the hosts process's state.
type hosts struct {
	validator peer.ID
	execs     []*executor.Executor
	cancel    []context.CancelFunc
	runs      sync.WaitGroup
	opened    atomic.Uint64
	closed    atomic.Uint64
	closeOnce sync.Once
}

func (hs *hosts) start(r HostsRequest) error {
	ps, err := node.ParseBootstrapPeers(r.Validator)
	if err != nil {
		return err
	}
	hs.validator = ps[0].ID
	// Count only the validator's connections: an executor also sees its
	// clients' (none here).
	notifee := &network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			if c.RemotePeer() == hs.validator {
				hs.opened.Add(1)
			}
		},
		DisconnectedF: func(_ network.Network, c network.Conn) {
			if c.RemotePeer() == hs.validator {
				hs.closed.Add(1)
			}
		},
	}
	pace := time.Duration(float64(time.Second) / max(r.Rate, 1))
	next := time.Now()
	for i := range r.Executors {
		time.Sleep(time.Until(next))
		next = next.Add(pace)
		key, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			return err
		}
		cfg := executor.DefaultConfig()
		cfg.Key = key
		cfg.Listen = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}
		cfg.Validators = ps
		cfg.HeartbeatInterval = r.Interval
		cfg.RemovalTimeout = 500 * time.Millisecond
		cfg.Models = []*pb.ModelDescriptor{Descriptor(r.First+i, fmt.Sprintf("real-%d", (r.First+i)%10))}
		e, err := executor.New(cfg)
		if err != nil {
			return fmt.Errorf("executor %d: %w", r.First+i, err)
		}
		e.Host().Network().Notify(notifee)
		ctx, cancel := context.WithCancel(context.Background())
		hs.execs = append(hs.execs, e)
		hs.cancel = append(hs.cancel, cancel)
		hs.runs.Go(func() { _ = e.Run(ctx) })
	}
	return nil
}

func (hs *hosts) stats() HostsReply {
	rep := HostsReply{Opened: hs.opened.Load(), Closed: hs.closed.Load(), CPU: CPUTime(), RSS: procStatus("VmRSS:")}
	for _, e := range hs.execs {
		if e.Host().Network().Connectedness(hs.validator) == network.Connected {
			rep.Connected++
		}
	}
	return rep
}

// close stops every executor at once: each publishes its REMOVAL.
func (hs *hosts) close() {
	hs.closeOnce.Do(func() {
		for _, c := range hs.cancel {
			c()
		}
		hs.runs.Wait()
		var wg sync.WaitGroup
		for _, e := range hs.execs {
			wg.Go(func() { e.Close() })
		}
		wg.Wait()
	})
}

// HostsProc is the parent's handle on a hosts process.
type HostsProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *json.Decoder
}

// StartHosts starts the running test binary again as a hosts process.
func StartHosts() (*HostsProc, error) {
	cmd, in, out, err := startSelf("^$", ChildEnv+"=hosts")
	if err != nil {
		return nil, err
	}
	return &HostsProc{cmd: cmd, in: in, out: out}, nil
}

// Do sends a request and waits for its reply.
func (p *HostsProc) Do(r HostsRequest) (HostsReply, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return HostsReply{}, err
	}
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		return HostsReply{}, fmt.Errorf("hosts %s: %w", r.Op, err)
	}
	var rep HostsReply
	if err := p.out.Decode(&rep); err != nil {
		return HostsReply{}, fmt.Errorf("hosts %s: no reply: %w", r.Op, err)
	}
	if rep.Err != "" {
		return rep, fmt.Errorf("hosts %s: %s", r.Op, rep.Err)
	}
	return rep, nil
}

// Close stops the executors (each sends its REMOVAL) and waits for the
// process to exit.
func (p *HostsProc) Close() error {
	_, _ = p.Do(HostsRequest{Op: "close"})
	return endChild(p.cmd, p.in, 30*time.Second)
}
