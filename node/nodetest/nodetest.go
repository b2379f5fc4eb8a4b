// Package nodetest starts lloom nodes in-process on loopback for tests:
// validators, executors and clients on port 0, each stopped in t.Cleanup,
// and a poller that waits for a condition with a deadline instead of
// sleeping.
package nodetest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/rs/zerolog"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/node/executor"
	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/protocol/pb"
)

// Timeout bounds every wait in these helpers.
const Timeout = 20 * time.Second

// Key returns a fresh Ed25519 identity.
func Key(t testing.TB) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Loopback is a TCP listen address on 127.0.0.1 with a free port.
func Loopback() []ma.Multiaddr {
	return []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}
}

// Logger writes to the test log at debug level when LLOOM_TEST_LOG is set,
// else nowhere.
func Logger(t testing.TB) zerolog.Logger {
	if testingLogs() {
		return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	}
	return zerolog.Nop()
}

// Bootstrap is the canonical bootstrap entry (multiaddr with /p2p/) of a
// validator.
func Bootstrap(t testing.TB, v *validator.Validator) node.BootstrapPeer {
	t.Helper()
	ps, err := node.ParseBootstrapPeers(v.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	return ps[0]
}

// Bootstraps returns the bootstrap entries of validators.
func Bootstraps(t testing.TB, vs ...*validator.Validator) []node.BootstrapPeer {
	var out []node.BootstrapPeer
	for _, v := range vs {
		out = append(out, Bootstrap(t, v))
	}
	return out
}

// Running is a node whose Run goroutine the test controls.
type Running struct {
	cancel context.CancelFunc
	done   chan error
}

// Stop cancels Run and waits for it to return.
func (r *Running) Stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(Timeout):
		t.Fatal("Run did not return after its context ended")
	}
}

func run(t testing.TB, f func(context.Context) error) *Running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- f(ctx) }()
	return r
}

// StartValidator starts a validator on loopback. mutate may change the
// config before it starts (nil keeps the defaults).
func StartValidator(t testing.TB, mutate func(*validator.Config)) (*validator.Validator, *Running) {
	t.Helper()
	cfg := validator.DefaultConfig()
	cfg.Key = Key(t)
	cfg.Listen = Loopback()
	cfg.SweepInterval = 50 * time.Millisecond
	cfg.Logger = Logger(t).With().Str("node", "validator").Logger()
	if mutate != nil {
		mutate(&cfg)
	}
	v, err := validator.New(cfg)
	if err != nil {
		t.Fatalf("start validator: %v", err)
	}
	r := run(t, v.Run)
	t.Cleanup(func() {
		r.cancel()
		v.Close()
	})
	return v, r
}

// StartExecutor starts an executor on loopback bootstrapping from vs.
func StartExecutor(t testing.TB, vs []*validator.Validator, models []*pb.ModelDescriptor, mutate func(*executor.Config)) (*executor.Executor, *Running) {
	t.Helper()
	cfg := executor.DefaultConfig()
	cfg.Key = Key(t)
	cfg.Listen = Loopback()
	cfg.Validators = Bootstraps(t, vs...)
	cfg.Models = models
	cfg.HeartbeatInterval = 200 * time.Millisecond
	cfg.Logger = Logger(t).With().Str("node", "executor").Logger()
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := executor.New(cfg)
	if err != nil {
		t.Fatalf("start executor: %v", err)
	}
	r := run(t, e.Run)
	t.Cleanup(func() {
		r.cancel()
		e.Close()
	})
	return e, r
}

// NewClient returns a client of validators vs.
func NewClient(t testing.TB, vs ...*validator.Validator) *client.Client {
	t.Helper()
	cfg := client.DefaultConfig()
	cfg.Validators = Bootstraps(t, vs...)
	cfg.Timeout = 5 * time.Second
	cfg.Logger = Logger(t).With().Str("node", "client").Logger()
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Model returns a descriptor with the given capacity and chat features.
func Model(id string, capacity uint32) *pb.ModelDescriptor {
	return &pb.ModelDescriptor{
		ModelId:          id,
		BackendType:      "ollama",
		MaxContextLength: 8192,
		Features:         []string{"chat", "completion"},
		Available:        true,
		Capacity:         capacity,
		Pricing:          &pb.Pricing{InputTokenPriceWei: "1000", OutputTokenPriceWei: "2000"},
	}
}

// Eventually polls cond every 20ms until it returns nil, failing the test
// with cond's last error after Timeout.
func Eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	EventuallyWithin(t, Timeout, what, cond)
}

// EventuallyWithin is Eventually with its own deadline.
func EventuallyWithin(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Registered is a condition: validator v holds executor id with exactly
// these models (in any order), verified (DESIGN §10), so that queries
// list it.
func Registered(v *validator.Validator, id peer.ID, models ...string) func() error {
	held := Held(v, id, models...)
	return func() error {
		if err := held(); err != nil {
			return err
		}
		if !v.Registry().Verified(id) {
			return fmt.Errorf("executor %s registered but not verified", id)
		}
		return nil
	}
}

// Held is Registered, verified or not: a peer that does not answer the
// announcement pull protocol is held unverified, hidden from queries.
func Held(v *validator.Validator, id peer.ID, models ...string) func() error {
	return func() error {
		e, ok := v.Registry().Get(id, time.Now())
		if !ok {
			return fmt.Errorf("executor %s not registered", id)
		}
		s, err := openModels(e)
		if err != nil {
			return err
		}
		if !sameSet(s, models) {
			return fmt.Errorf("executor %s registered with models %v, want %v", id, s, models)
		}
		return nil
	}
}

// Absent is a condition: validator v does not hold executor id.
func Absent(v *validator.Validator, id peer.ID) func() error {
	return func() error {
		if _, ok := v.Registry().Get(id, time.Now()); ok {
			return errors.New("executor " + id.String() + " still registered")
		}
		return nil
	}
}
