package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/rs/zerolog"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/node/executor"
	"github.com/lloom/lloom/protocol/pb"
)

// ExecutorEnv names the environment variable that makes the test binary
// (its TestMain) run an executor for the parent instead of the tests.
const ExecutorEnv = "LLOOM_BENCH_EXECUTOR"

// ExecutorSetup is the first line the parent writes to an executor
// process: what to serve, from which backend, announced to which
// validator.
type ExecutorSetup struct {
	Validator  string // full multiaddr with /p2p/
	BackendURL string
	Model      string
	Capacity   uint32
	Queue      uint32
	CPUProfile string // file for the executor's CPU profile ("" none)
}

// ExecutorStats is the executor process's account of itself. CPU leaves
// out the garbage collections the measurements themselves force.
type ExecutorStats struct {
	Err        string `json:",omitempty"`
	Peer       string `json:",omitempty"`
	CPU        time.Duration
	Memory     Memory // only from a "mem" request
	TotalAlloc uint64 // bytes allocated since the start, freed or not
	StackInuse uint64 // goroutine stacks, which the heap figures leave out
	Goroutines int
}

// RunExecutorProcess is the executor process: it reads an ExecutorSetup,
// starts the executor, answers "cpu" and "mem" lines on stdout with
// ExecutorStats, and stops at "close" or the end of its input.
func RunExecutorProcess(stdin io.Reader, stdout io.Writer) error {
	in := bufio.NewScanner(stdin)
	enc := json.NewEncoder(stdout)
	if !in.Scan() {
		return errors.New("executor process: no setup")
	}
	var s ExecutorSetup
	if err := json.Unmarshal(in.Bytes(), &s); err != nil {
		return err
	}
	e, stop, err := startExecutorProcess(s)
	if err != nil {
		_ = enc.Encode(ExecutorStats{Err: err.Error()})
		return err
	}
	defer stop()
	var excluded time.Duration // CPU spent measuring
	stats := func(mem bool) ExecutorStats {
		st := ExecutorStats{Peer: e.ID().String(), CPU: CPUTime() - excluded, Goroutines: runtime.NumGoroutine()}
		if mem {
			before := CPUTime()
			st.Memory = ReadMemory()
			excluded += CPUTime() - before
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st.TotalAlloc, st.StackInuse = ms.TotalAlloc, ms.StackInuse
		return st
	}
	if err := enc.Encode(stats(false)); err != nil {
		return err
	}
	for in.Scan() {
		switch op := in.Text(); op {
		case "close":
			return nil
		case "cpu", "mem":
			if err := enc.Encode(stats(op == "mem")); err != nil {
				return err
			}
		default:
			return fmt.Errorf("executor process: unknown op %q", op)
		}
	}
	return in.Err()
}

func startExecutorProcess(s ExecutorSetup) (*executor.Executor, func(), error) {
	boot, err := node.ParseBootstrapPeers(s.Validator)
	if err != nil {
		return nil, nil, err
	}
	cfg := executor.DefaultConfig()
	if cfg.Key, err = newKey(); err != nil {
		return nil, nil, err
	}
	cfg.Listen = loopback()
	cfg.Validators = boot
	cfg.Logger = zerolog.Nop()
	m := &pb.ModelDescriptor{ModelId: s.Model, BackendType: "ollama", MaxContextLength: 8192,
		Features: []string{"chat", "completion"}, Available: true, Capacity: s.Capacity,
		Pricing: &pb.Pricing{InputTokenPriceWei: "1000", OutputTokenPriceWei: "2000"}}
	cfg.Models = []*pb.ModelDescriptor{m}
	q := s.Queue
	cfg.Serving = map[string]executor.ModelServing{s.Model: {Queue: &q}}
	cfg.Backend.URL = s.BackendURL
	cfg.InferenceRate = 0 // the benchmark's few clients send every request
	var prof *os.File
	if s.CPUProfile != "" {
		if prof, err = os.Create(s.CPUProfile); err != nil {
			return nil, nil, err
		}
		if err := pprof.StartCPUProfile(prof); err != nil {
			return nil, nil, err
		}
	}
	e, err := executor.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	return e, func() {
		cancel()
		<-done
		e.Close()
		if prof != nil {
			pprof.StopCPUProfile()
			prof.Close()
		}
	}, nil
}

func newKey() (crypto.PrivKey, error) {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	return k, err
}

func loopback() []ma.Multiaddr { return []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")} }

// ExecutorProcess is the parent's handle on an executor process.
type ExecutorProcess struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *json.Decoder
	Peer string
}

// StartExecutorProcess starts the running test binary again as an
// executor (its TestMain) set up as s.
func StartExecutorProcess(s ExecutorSetup) (*ExecutorProcess, error) {
	cmd, in, out, err := startSelf("^$", ExecutorEnv+"=1")
	if err != nil {
		return nil, err
	}
	p := &ExecutorProcess{cmd: cmd, in: in, out: out}
	b, _ := json.Marshal(s)
	if _, err := in.Write(append(b, '\n')); err != nil {
		p.Close()
		return nil, err
	}
	st, err := p.read()
	if err != nil {
		p.Close()
		return nil, err
	}
	p.Peer = st.Peer
	return p, nil
}

func (p *ExecutorProcess) read() (ExecutorStats, error) {
	var st ExecutorStats
	if err := p.out.Decode(&st); err != nil {
		return st, fmt.Errorf("executor process: %w", err)
	}
	if st.Err != "" {
		return st, fmt.Errorf("executor process: %s", st.Err)
	}
	return st, nil
}

// CPU returns the process's CPU time so far.
func (p *ExecutorProcess) CPU() (ExecutorStats, error) { return p.ask("cpu") }

// Memory collects the process's garbage and returns its memory.
func (p *ExecutorProcess) Memory() (ExecutorStats, error) { return p.ask("mem") }

func (p *ExecutorProcess) ask(op string) (ExecutorStats, error) {
	if _, err := io.WriteString(p.in, op+"\n"); err != nil {
		return ExecutorStats{}, err
	}
	return p.read()
}

// Close stops the executor (writing its profile) and waits for the
// process.
func (p *ExecutorProcess) Close() error {
	_, _ = io.WriteString(p.in, "close\n")
	return endChild(p.cmd, p.in, 15*time.Second)
}
