// Command chat sends a prompt through a lloom network with the Go API: it
// starts a validator, an executor in front of an OpenAI-compatible LLM
// engine, and a client; the client finds the executor through the
// validator, streams the answer to standard output as it arrives, and
// checks the receipt the executor signed for exactly that answer. It exits
// non-zero if any step fails.
//
//	go run ./examples/chat                      # offline: a tiny built-in engine
//	go run ./examples/chat -prompt "Why is the sky blue?"
//	go run ./examples/chat -backend-url http://127.0.0.1:11434/v1 -model llama3.2:3b
//
// Without -backend-url (or LLOOM_BACKEND_URL) the executor's engine is a
// small OpenAI-compatible server in this program that echoes the prompt.
// With one and no -model, the executor serves what the engine lists and
// the client asks its first model.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/node/executor"
	"github.com/lloom/lloom/node/validator"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

func main() {
	backendURL := flag.String("backend-url", os.Getenv("LLOOM_BACKEND_URL"), "OpenAI-compatible base URL ending in /v1 (default: a tiny engine built in; env LLOOM_BACKEND_URL)")
	model := flag.String("model", "", "model to chat with (default: the engine's first)")
	prompt := flag.String("prompt", "Why is the sky blue?", "what to ask")
	maxTokens := flag.Uint("max-tokens", 64, "most tokens in the answer")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up after this long")
	flag.Parse()
	if *maxTokens == 0 || *maxTokens > 1<<20 {
		fmt.Fprintln(os.Stderr, "chat: -max-tokens: want 1 to 1048576")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *backendURL, *model, *prompt, uint32(*maxTokens)); err != nil {
		fmt.Fprintln(os.Stderr, "chat: "+err.Error())
		os.Exit(1)
	}
}

// Prices the executor announces, in wei per token.
const (
	inputPrice  = "1000"
	outputPrice = "2000"
)

func run(ctx context.Context, backendURL, model, prompt string, maxTokens uint32) error {
	loopback := []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}

	// 1. The engine: the one given, or the built-in one.
	if backendURL == "" {
		b, err := startTinyBackend()
		if err != nil {
			return err
		}
		defer b.Close()
		backendURL, model = b.url, tinyModel
		step("Started a tiny OpenAI-compatible engine at %s serving %s", backendURL, model)
	} else {
		step("Using the engine at %s", backendURL)
	}

	// 2. A validator.
	vcfg := validator.DefaultConfig()
	vcfg.Key = newKey()
	vcfg.Listen = loopback
	v, err := validator.New(vcfg)
	if err != nil {
		return err
	}
	defer v.Close()
	go v.Run(ctx)
	peers, err := node.ParseBootstrapPeers(v.Addrs()[0])
	if err != nil {
		return err
	}
	step("Started a validator at %s", v.Addrs()[0])

	// 3. An executor in front of the engine. A model given is announced
	// with prices; without one, it announces what the engine lists.
	price := &pb.Pricing{InputTokenPriceWei: inputPrice, OutputTokenPriceWei: outputPrice}
	ecfg := executor.DefaultConfig()
	ecfg.Key = newKey()
	ecfg.Listen = loopback
	ecfg.Validators = peers
	ecfg.HeartbeatInterval = time.Second
	ecfg.Backend.URL = backendURL
	ecfg.Backend.APIKey = os.Getenv("LLOOM_BACKEND_KEY")
	describe := func(id string) *pb.ModelDescriptor {
		return &pb.ModelDescriptor{ModelId: id, BackendType: "openai", Features: []string{"chat", "completion"},
			Available: true, Capacity: 2, Pricing: price}
	}
	if model != "" {
		ecfg.Models = []*pb.ModelDescriptor{describe(model)}
	} else {
		ecfg.Discover, ecfg.DiscoverTemplate = true, describe("template")
	}
	e, err := executor.New(ecfg)
	if err != nil {
		return err
	}
	defer e.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	step("Started executor %s", e.ID())

	// 4. A client. It waits until the validator lists the model served and
	// available, then asks.
	ccfg := client.DefaultConfig()
	ccfg.Validators = peers
	c, err := client.New(ccfg)
	if err != nil {
		return err
	}
	defer c.Close()
	if model, err = waitServed(ctx, c, e, model); err != nil {
		return err
	}
	step("The validator lists %s, served by the executor; asking: %q", model, prompt)

	fmt.Println()
	ans, err := c.Infer(ctx, client.Request{
		Model:     model,
		Messages:  []*pb.ChatMessage{{Role: "user", Content: prompt}},
		MaxTokens: &maxTokens,
	}, func(text string) error {
		_, err := fmt.Print(text) // each chunk as it arrives
		return err
	})
	fmt.Println()
	if err != nil {
		return fmt.Errorf("the request failed: %w", err)
	}
	if err := showReceipt(ans, c); err != nil {
		return err
	}

	// 5. Shut down: Run withdraws the executor's announcement first.
	stop()
	if err := <-done; err != nil {
		return err
	}
	step("Stopped the executor")
	return nil
}

// waitServed waits until the validator lists the executor serving model
// (its first announced model, when model is empty) as available.
func waitServed(ctx context.Context, c *client.Client, e *executor.Executor, model string) (string, error) {
	for {
		if model == "" {
			if ms := e.Models(); len(ms) > 0 {
				model = ms[0].GetModelId()
			}
		}
		if model != "" {
			res, err := c.FindModel(ctx, model, nil)
			if err == nil && len(res.Executors) > 0 && res.Executors[0].PeerID == e.ID() && res.Executors[0].Model.GetAvailable() {
				return model, nil
			}
		}
		select {
		case <-ctx.Done():
			if model == "" {
				return "", errors.New("the engine lists no model (GET /v1/models); give one with -model")
			}
			return "", fmt.Errorf("the validator never listed %s as available: is the engine up, and does it serve that model?", model)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// showReceipt prints the receipt and checks it once more here: signed by
// the executor that answered, for this client, this request and exactly
// this text, with a fee that follows from its own prices and tokens.
func showReceipt(ans *client.Answer, c *client.Client) error {
	r := ans.Receipt.Receipt
	step("Receipt signed by %s", ans.Executor)
	fmt.Printf("   request    %x\n", r.GetRequestId())
	fmt.Printf("   model      %s, finish reason %s\n", r.GetModelId(), r.GetFinishReason())
	fmt.Printf("   tokens     %d in, %d out\n", r.GetPromptTokens(), r.GetCompletionTokens())
	fmt.Printf("   prices     %s wei in, %s wei out per token, minimum fee %s wei\n",
		r.GetInputTokenPriceWei(), r.GetOutputTokenPriceWei(), orZero(r.GetMinimumFeeWei()))
	fmt.Printf("   fee        %s wei\n", r.GetFeeWei())
	fmt.Printf("   output     sha256 %x\n", r.GetOutputSha256())
	fmt.Printf("   time       first token after %s, answer in %s\n", ans.TTFT.Round(time.Millisecond), ans.Duration.Round(time.Millisecond))

	claim := lp.ReceiptClaim{Executor: ans.Executor, Client: c.Host().ID(), RequestID: ans.RequestID, ModelID: r.GetModelId(), Text: ans.Text}
	if _, err := lp.VerifyReceipt(ans.Receipt.Raw, claim); err != nil {
		return fmt.Errorf("the receipt does not verify: %w", err)
	}
	claim.Text += " (tampered)"
	if _, err := lp.VerifyReceipt(ans.Receipt.Raw, claim); err == nil {
		return errors.New("the receipt verifies for a text the executor did not send")
	}
	if want := fee(r); r.GetFeeWei() != want {
		return fmt.Errorf("the receipt charges %s wei; its own prices and tokens make %s", r.GetFeeWei(), want)
	}
	if ans.Text == "" || r.GetCompletionTokens() != ans.Usage.GetCompletionTokens() {
		return fmt.Errorf("answer %q with usage %v does not match the receipt", ans.Text, ans.Usage)
	}
	fmt.Println("   verified: signature, executor, client, request id, text digest and fee; a tampered text fails")
	return nil
}

// fee is max(minimum fee, prompt tokens × input price + completion tokens
// × output price), in arbitrary precision as the protocol computes it.
func fee(r *pb.Receipt) string {
	num := func(s string) *big.Int {
		n, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return new(big.Int)
		}
		return n
	}
	f := new(big.Int).Mul(big.NewInt(int64(r.GetPromptTokens())), num(r.GetInputTokenPriceWei()))
	f.Add(f, new(big.Int).Mul(big.NewInt(int64(r.GetCompletionTokens())), num(r.GetOutputTokenPriceWei())))
	if m := num(r.GetMinimumFeeWei()); f.Cmp(m) < 0 {
		f = m
	}
	return f.String()
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

func newKey() crypto.PrivKey {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func step(format string, args ...any) {
	fmt.Printf("== "+format+"\n", args...)
}
