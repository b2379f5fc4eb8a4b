package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lloom/lloom/node/client"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// chatFlags are the inference commands' own flags.
type chatFlags struct {
	system      string
	maxTokens   uint32
	temperature float64
	topP        float64
	seed        int64
	stop        []string
	maxFee      string
	explain     bool
}

// defaultChatTimeout leaves room for a queue at the executor.
const defaultChatTimeout = time.Minute

func newInferenceCommand(a *app, chat bool) *cobra.Command {
	var (
		cf clientFlags
		ch chatFlags
	)
	use, short, long := "complete MODEL PROMPT", "Complete PROMPT with MODEL through the network", `Send PROMPT to an executor serving MODEL (a text completion) and stream
the answer to standard output as it arrives.`
	args := cobra.ExactArgs(2)
	if chat {
		use, short, long = "chat MODEL [PROMPT]", "Chat with MODEL through the network", `Send PROMPT (or standard input, when PROMPT is not given) as a user
message to an executor serving MODEL, and stream the answer to standard
output as it arrives.`
		args = cobra.RangeArgs(1, 2)
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: long + `

The client asks the validators who serves MODEL, verifies each executor's
signed announcement, picks one of the two least-loaded healthy executors
at random, and moves on to the next one if it fails before the first
chunk (at most 3 attempts). A summary line (executor, tokens, fee, time to
first token) goes to standard error. The exit status is 0 only when the
answer arrived complete and the executor's signed receipt verified.`,
		Example: `  lloom client chat llama3.2:3b "Why is the sky blue?"
  echo "Summarise this" | lloom client chat llama3.2:3b --system "Be brief" --max-tokens 200 --json
  lloom client complete llama3.2:3b "Once upon a time" --max-tokens 50`,
		Args: args,
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := ch.request(cmd, args, chat, a.stdin)
			if err != nil {
				return err
			}
			if req.Filters, err = cf.filters.proto(false); err != nil {
				return err
			}
			req.MaxInputPriceWei, req.MaxOutputPriceWei = cf.filters.maxInputPrice, cf.filters.maxOutputPrice
			req.FirstChunkTimeout = cf.timeout
			return withClient(a, &cf, func(ctx context.Context, c *client.Client) error {
				var out func(string) error
				if !cf.json {
					out = func(s string) error {
						_, err := io.WriteString(a.stdout, s)
						return err
					}
				}
				ans, err := c.Infer(ctx, req, out)
				if ans != nil && ch.explain {
					explain(a.stderr, ans)
				}
				if cf.json && ans != nil {
					if jerr := writeJSON(a.stdout, answerJSON(req.Model, ans, err)); jerr != nil {
						return jerr
					}
				} else if ans != nil && ans.Text != "" && !strings.HasSuffix(ans.Text, "\n") {
					fmt.Fprintln(a.stdout)
				}
				if err != nil {
					return inferenceError(err)
				}
				if !cf.json {
					fmt.Fprintln(a.stderr, summary(ans))
				}
				return nil
			})
		},
	}
	cf.register(cmd.Flags())
	cf.registerFilters(cmd.Flags())
	cf.timeout = defaultChatTimeout
	cmd.Flags().Lookup("timeout").DefValue = defaultChatTimeout.String()
	cmd.Flags().Lookup("timeout").Usage = "time to reach the validators, and for each executor tried to start answering"
	fs := cmd.Flags()
	if chat {
		fs.StringVar(&ch.system, "system", "", "system message sent before the prompt")
	}
	fs.Uint32Var(&ch.maxTokens, "max-tokens", 0, "most tokens to generate (default: the backend's limit)")
	fs.Float64Var(&ch.temperature, "temperature", 0, "sampling temperature, 0-2 (default: the backend's)")
	fs.Float64Var(&ch.topP, "top-p", 0, "nucleus sampling, (0, 1] (default: the backend's)")
	fs.Int64Var(&ch.seed, "seed", 0, "sampling seed, for repeatable answers (default: none)")
	fs.StringArrayVar(&ch.stop, "stop", nil, "stop generating at this text (repeatable, at most 4)")
	fs.StringVar(&ch.maxFee, "max-fee", "", "refuse executors whose minimum fee (wei) is above this")
	fs.BoolVar(&ch.explain, "explain", false, "say which executors were seen and why each was chosen or skipped (standard error)")
	return cmd
}

// request builds the request from the arguments and the flags the user set.
func (ch *chatFlags) request(cmd *cobra.Command, args []string, chat bool, stdin io.Reader) (client.Request, error) {
	req := client.Request{Model: args[0], Stop: ch.stop, MaxFeeWei: ch.maxFee}
	if !lp.ValidModelID(req.Model) {
		return req, usagef("model id %q: want 1-128 characters of [A-Za-z0-9._:/@-]", req.Model)
	}
	prompt := ""
	if len(args) == 2 {
		prompt = args[1]
	} else {
		b, err := io.ReadAll(io.LimitReader(stdin, lp.MaxInferenceRequestSize))
		if err != nil {
			return req, fmt.Errorf("read the prompt from standard input: %w", err)
		}
		prompt = strings.TrimRight(string(b), "\n")
	}
	if strings.TrimSpace(prompt) == "" {
		return req, usagef("empty prompt: give PROMPT as an argument or on standard input")
	}
	if chat {
		if ch.system != "" {
			req.Messages = append(req.Messages, &pb.ChatMessage{Role: "system", Content: ch.system})
		}
		req.Messages = append(req.Messages, &pb.ChatMessage{Role: "user", Content: prompt})
	} else {
		req.Prompt = prompt
	}
	fs := cmd.Flags()
	if fs.Changed("max-tokens") {
		if ch.maxTokens == 0 {
			return req, usagef("--max-tokens 0: want at least 1")
		}
		req.MaxTokens = &ch.maxTokens
	}
	if fs.Changed("temperature") {
		if !(ch.temperature >= 0 && ch.temperature <= lp.MaxTemperature) {
			return req, usagef("--temperature %v: want 0-2", ch.temperature)
		}
		req.Temperature = &ch.temperature
	}
	if fs.Changed("top-p") {
		if !(ch.topP > 0 && ch.topP <= 1) || math.IsNaN(ch.topP) {
			return req, usagef("--top-p %v: want more than 0 and at most 1", ch.topP)
		}
		req.TopP = &ch.topP
	}
	if fs.Changed("seed") {
		req.Seed = &ch.seed
	}
	if len(ch.stop) > lp.MaxStopStrings {
		return req, usagef("%d --stop strings: at most %d", len(ch.stop), lp.MaxStopStrings)
	}
	if err := lp.CheckPrice(ch.maxFee); err != nil {
		return req, usagef("--max-fee %q: want a whole number of wei", ch.maxFee)
	}
	return req, nil
}

// inferenceError names the code of a failed request in its one line.
func inferenceError(err error) error {
	if errors.Is(err, client.ErrNoExecutor) {
		return err
	}
	var e *lp.Error
	if errors.As(err, &e) {
		return err // its text ends with "(code N)"
	}
	return fmt.Errorf("request failed: %w", err)
}

func summary(ans *client.Answer) string {
	fee := "-"
	if ans.Receipt != nil {
		fee = ans.Receipt.Receipt.GetFeeWei() + " wei"
	}
	return fmt.Sprintf("executor %s · %d+%d tokens · fee %s · first token %s · %s · receipt verified",
		ans.Executor, ans.Usage.GetPromptTokens(), ans.Usage.GetCompletionTokens(), fee,
		ans.TTFT.Round(time.Millisecond), ans.Duration.Round(time.Millisecond))
}
