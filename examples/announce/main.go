// Command announce walks through lloom's executor API over a real libp2p
// network: it starts a validator (or joins the one in VALIDATOR_ADDRESS),
// announces models, changes them at runtime, reports load until a model is
// overloaded, shows a forged announcement being rejected, and shuts down
// with a removal. After each step it asks the network what it now says, and
// it exits non-zero if the network does not show what the step did.
//
//	go run ./examples/announce
package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/node/executor"
	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/protocol/pb"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "announce: "+err.Error())
		os.Exit(1)
	}
	fmt.Println("\nEvery step showed up on the network as expected.")
}

func run() error {
	ctx := context.Background()
	loopback := []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}

	// 1. A validator: join the one in VALIDATOR_ADDRESS, or start our own.
	peers, err := node.ParseBootstrapPeers(os.Getenv("VALIDATOR_ADDRESS"))
	if err != nil {
		return err
	}
	if len(peers) == 0 {
		vcfg := validator.DefaultConfig()
		vcfg.Key = newKey()
		vcfg.Listen = loopback
		v, err := validator.New(vcfg)
		if err != nil {
			return err
		}
		defer v.Close()
		go v.Run(ctx)
		if peers, err = node.ParseBootstrapPeers(v.Addrs()[0]); err != nil {
			return err
		}
		step("Started a validator at %s", v.Addrs()[0])
	} else {
		step("Joining the validator at %s", peers[0].Raw)
	}

	// A client to ask the network what it says after each step.
	ccfg := client.DefaultConfig()
	ccfg.Validators = peers
	c, err := client.New(ccfg)
	if err != nil {
		return err
	}
	defer c.Close()

	// 2. An executor with two models. It announces them once a validator
	// has joined the topic, then sends a heartbeat every second.
	llama := &pb.ModelDescriptor{
		ModelId: "llama3.2:3b", BackendType: "ollama", MaxContextLength: 8192,
		Features: []string{"chat", "completion"}, Available: true, Capacity: 2,
		Pricing: &pb.Pricing{InputTokenPriceWei: "1000", OutputTokenPriceWei: "2000"},
	}
	embed := &pb.ModelDescriptor{
		ModelId: "nomic-embed-text", BackendType: "ollama", MaxContextLength: 2048,
		Features: []string{"embeddings"}, Available: true, Capacity: 8,
	}
	ecfg := executor.DefaultConfig()
	ecfg.Key = newKey()
	ecfg.Listen = loopback
	ecfg.Validators = peers
	ecfg.Models = []*pb.ModelDescriptor{llama, embed}
	ecfg.HeartbeatInterval = time.Second
	e, err := executor.New(ecfg)
	if err != nil {
		return err
	}
	defer e.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	step("Started executor %s with %s and %s", e.ID(), llama.ModelId, embed.ModelId)
	if err := expect(ctx, c, "llama3.2:3b", "the executor serves llama3.2:3b", func(x *client.Executor) bool {
		return x.Model.GetCapacity() == 2
	}); err != nil {
		return err
	}

	// 3. Update a model's price and measured performance. The executor
	// announces its whole new model set (an UPDATE).
	llama.Pricing = &pb.Pricing{InputTokenPriceWei: "800", OutputTokenPriceWei: "1500"}
	llama.Performance = &pb.Performance{TokensPerSecond: 42, TimeToFirstTokenMs: 180, SuccessRate: 0.99}
	if err := e.PutModel(llama); err != nil {
		return err
	}
	step("Lowered the price of llama3.2:3b and reported 42 tokens/s")
	if err := expect(ctx, c, "llama3.2:3b", "the new price and performance", func(x *client.Executor) bool {
		return x.Model.GetPricing().GetOutputTokenPriceWei() == "1500" && x.Model.GetPerformance().GetTokensPerSecond() == 42
	}); err != nil {
		return err
	}

	// 4. Add a model at runtime.
	qwen := &pb.ModelDescriptor{ModelId: "qwen2.5:7b", BackendType: "vllm", MaxContextLength: 32768,
		Features: []string{"chat"}, Available: true, Capacity: 4}
	if err := e.PutModel(qwen); err != nil {
		return err
	}
	step("Added qwen2.5:7b at runtime")
	if err := expect(ctx, c, "qwen2.5:7b", "the added model", nil); err != nil {
		return err
	}

	// 5. Load: two active requests fill llama3.2:3b's capacity of 2. The
	// load goes out with the next heartbeat; Heartbeat sends one now.
	if err := e.SetLoad("llama3.2:3b", 1, 1, 0); err != nil {
		return err
	}
	if err := e.Heartbeat(ctx); err != nil {
		return err
	}
	step("Reported 1 active and 1 queued request on llama3.2:3b (capacity 2)")
	if err := expect(ctx, c, "llama3.2:3b", "the model overloaded", func(x *client.Executor) bool {
		return x.Status == pb.ExecutorStatus_EXECUTOR_STATUS_OVERLOADED && x.Active == 1 && x.Queued == 1
	}); err != nil {
		return err
	}
	if err := e.SetLoad("llama3.2:3b", 0, 0, 0); err != nil {
		return err
	}
	if err := e.Heartbeat(ctx); err != nil {
		return err
	}
	step("Load back to zero")
	if err := expect(ctx, c, "llama3.2:3b", "the model healthy again", func(x *client.Executor) bool {
		return x.Status == pb.ExecutorStatus_EXECUTOR_STATUS_HEALTHY && x.Active == 0
	}); err != nil {
		return err
	}

	// 6. A forged announcement: validators check every signature and
	// reject it; the registry does not change.
	before, err := rejected(ctx, c)
	if err != nil {
		return err
	}
	if err := publishForged(ctx, peers, e, ecfg.Key); err != nil {
		return err
	}
	step("Published an announcement for this executor with a broken signature")
	if err := poll(ctx, "the validator to reject it", func() (bool, string, error) {
		n, err := rejected(ctx, c)
		return n > before, fmt.Sprintf("messages rejected: %d (was %d)", n, before), err
	}); err != nil {
		return err
	}
	if err := expect(ctx, c, "qwen2.5:7b", "the registry unchanged", nil); err != nil {
		return err
	}

	// 7. Shut down: Run publishes a REMOVAL before it returns.
	stop()
	if err := <-done; err != nil {
		return err
	}
	step("Stopped the executor")
	return poll(ctx, "its models to disappear", func() (bool, string, error) {
		res, err := c.FindModel(ctx, "llama3.2:3b", &pb.QueryFilters{IncludeStale: true})
		if err != nil {
			return false, "", err
		}
		return len(res.Executors) == 0, fmt.Sprintf("%d executor(s) serve llama3.2:3b", len(res.Executors)), nil
	})
}

func newKey() crypto.PrivKey {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func step(format string, args ...any) {
	fmt.Printf("\n== "+format+"\n", args...)
}
