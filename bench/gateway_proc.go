package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"time"
)

// NetEnv names the environment variable that makes the test binary's
// TestGatewayNetProcess run the network behind a gateway for the parent
// instead of skipping.
const NetEnv = "LLOOM_BENCH_GATEWAY_NET"

// NetSetup is the first line the parent writes to the network process:
// one validator, executors serving benchModel from one fake backend that
// waits Gap between tokens, each with this capacity and queue.
type NetSetup struct {
	Executors int
	Capacity  uint32
	Queue     uint32
	Gap       time.Duration
	LogFile   string // the validator's and executors' debug log ("" none)
}

// NetOp is one request of the parent to the network process. Its HTTP
// clients (the load) run there too, so that the parent's CPU time and
// heap are the gateway's alone.
//
//   - load: Requests requests from Clients clients in a closed loop.
//   - hold: Streams streamed requests at once, with the backend holding
//     each before its first token; answers once all are at the backend.
//   - release: lets the held requests stream; answers once each has had
//     its first content.
//   - finish: waits for the held streams to end.
//   - idle: closes the clients' idle connections.
//   - cpu: the process's CPU time. close: stop.
type NetOp struct {
	Op       string
	URL      string // the gateway, ending in /v1
	Body     string
	Stream   bool
	Clients  int
	Requests int
	Streams  int
}

// NetReply is the network process's answer to one NetOp.
type NetReply struct {
	Err       string `json:",omitempty"`
	Validator string `json:",omitempty"` // full multiaddr, after setup
	CPU       time.Duration
	Active    int        // requests at the backend
	Started   int        // held streams that have had content
	Load      LoadResult // load, finish
}

// NetProcess is the parent's handle on the network process.
type NetProcess struct {
	cmd       *exec.Cmd
	in        io.WriteCloser
	out       *json.Decoder
	Validator string
}

// StartNetProcess starts the running test binary again as the network
// behind a gateway (its TestGatewayNetProcess), set up as s.
func StartNetProcess(s NetSetup) (*NetProcess, error) {
	cmd, in, out, err := startSelf("^TestGatewayNetProcess$", NetEnv+"=1")
	if err != nil {
		return nil, err
	}
	p := &NetProcess{cmd: cmd, in: in, out: out}
	if err := p.write(s); err != nil {
		p.Close()
		return nil, err
	}
	r, err := p.read()
	if err != nil {
		p.Close()
		return nil, err
	}
	p.Validator = r.Validator
	return p, nil
}

func (p *NetProcess) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = p.in.Write(append(b, '\n'))
	return err
}

func (p *NetProcess) read() (NetReply, error) {
	var r NetReply
	if err := p.out.Decode(&r); err != nil {
		return r, fmt.Errorf("network process: %w", err)
	}
	if r.Err != "" {
		return r, fmt.Errorf("network process: %s", r.Err)
	}
	return r, nil
}

// Do sends op and returns the answer.
func (p *NetProcess) Do(op NetOp) (NetReply, error) {
	if err := p.write(op); err != nil {
		return NetReply{}, err
	}
	return p.read()
}

// Close stops the process and waits for it.
func (p *NetProcess) Close() error {
	_ = p.write(NetOp{Op: "close"})
	return endChild(p.cmd, p.in, 15*time.Second)
}
