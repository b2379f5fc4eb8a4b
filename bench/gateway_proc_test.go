package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lloom/lloom/node/executor"
	"github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/pkg/backend/backendtest"
	"github.com/lloom/lloom/protocol/pb"
)

// TestGatewayNetProcess is the network process the gateway benchmarks
// start (the test binary run again with NetEnv set): a validator,
// executors and their fake backend, and the HTTP clients that load the
// gateway, which runs in the parent alone. Run as a test, it checks its
// own protocol in-process: a setup, one operation, close.
func TestGatewayNetProcess(t *testing.T) {
	if os.Getenv(NetEnv) != "" {
		if err := runNetProcess(t, os.Stdin, os.Stdout); err != nil {
			t.Fatal(err)
		}
		return
	}
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for _, m := range []any{NetSetup{Executors: 1, Capacity: 2}, NetOp{Op: "cpu"}, NetOp{Op: "close"}} {
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := runNetProcess(t, &in, &out); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&out)
	var setup, cpu NetReply
	if err := dec.Decode(&setup); err != nil || setup.Validator == "" || setup.Err != "" {
		t.Fatalf("setup answered %+v (%v), want the validator's address", setup, err)
	}
	if err := dec.Decode(&cpu); err != nil || cpu.CPU <= 0 || cpu.Err != "" {
		t.Fatalf("cpu answered %+v (%v), want the process's CPU time", cpu, err)
	}
}

func runNetProcess(t *testing.T, stdin io.Reader, stdout io.Writer) error {
	in := bufio.NewScanner(stdin)
	in.Buffer(make([]byte, 64<<10), 4<<20)
	enc := json.NewEncoder(stdout)
	if !in.Scan() {
		return errors.New("network process: no setup")
	}
	var s NetSetup
	if err := json.Unmarshal(in.Bytes(), &s); err != nil {
		return err
	}
	log := zerolog.Nop()
	if s.LogFile != "" {
		f, err := os.Create(s.LogFile)
		if err != nil {
			return err
		}
		t.Cleanup(func() { f.Close() }) // after the nodes' cleanups, which log
		log = zerolog.New(f).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	}
	fake := backendtest.New(t, backendtest.WithModels(benchModel), backendtest.WithDelay(0, s.Gap))
	v, _ := nodetest.StartValidator(t, func(cfg *validator.Config) {
		cfg.QueryRate = 0 // the gateway is the only client
		cfg.SweepInterval = time.Second
		cfg.Logger = log.With().Str("node", "validator").Logger()
	})
	for range max(s.Executors, 1) {
		q := s.Queue
		e, _ := nodetest.StartExecutor(t, []*validator.Validator{v}, []*pb.ModelDescriptor{nodetest.Model(benchModel, s.Capacity)}, func(cfg *executor.Config) {
			cfg.Backend.URL = fake.URL()
			cfg.InferenceRate = 0 // one gateway sends every request
			cfg.HeartbeatInterval = executor.DefaultConfig().HeartbeatInterval
			cfg.Serving = map[string]executor.ModelServing{benchModel: {Queue: &q}}
			cfg.Logger = log.With().Str("node", "executor").Logger()
		})
		nodetest.Eventually(t, "executor registered", nodetest.Registered(v, e.ID(), benchModel))
	}
	if err := enc.Encode(NetReply{Validator: v.Addrs()[0]}); err != nil {
		return err
	}

	ctx := context.Background()
	hc := NewHTTPClient(4096)
	defer hc.CloseIdleConnections()
	var held *Holder
	var release func()
	var released time.Time
	for in.Scan() {
		var op NetOp
		if err := json.Unmarshal(in.Bytes(), &op); err != nil {
			return err
		}
		var r NetReply
		switch op.Op {
		case "close":
			return nil
		case "cpu":
		case "idle":
			hc.CloseIdleConnections()
		case "load":
			r.Load = RunLoad(ctx, hc, op.URL, op.Body, op.Stream, op.Clients, op.Requests)
		case "hold":
			release = fake.Block()
			held = Hold(ctx, hc, op.URL, op.Body, op.Streams)
			deadline := time.Now().Add(nodetest.Timeout)
			for fake.Active() < op.Streams && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
		case "release":
			if held == nil {
				r.Err = "release without hold"
				break
			}
			released = time.Now()
			release()
			r.Started = held.WaitStarted(nodetest.Timeout)
		case "finish":
			if held == nil {
				r.Err = "finish without hold"
				break
			}
			r.Load = held.Wait(released)
			r.Load.Wall = time.Since(released)
			held = nil
		default:
			r.Err = fmt.Sprintf("unknown op %q", op.Op)
		}
		r.CPU, r.Active = CPUTime(), fake.Active()
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return in.Err()
}
