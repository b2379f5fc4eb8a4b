package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/node/gateway"
)

func newGatewayCommand(a *app) *cobra.Command {
	cfg := gateway.DefaultConfig()
	var (
		validators string
		filters    filterFlags
		port       int
		mf         metricsFlags
	)
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Serve the network behind one OpenAI-compatible HTTP endpoint",
		Long: `Run a local HTTP server that speaks OpenAI's API (GET /v1/models,
POST /v1/chat/completions, POST /v1/completions, streamed or not) and
routes every request over the lloom network: the executors' signed
announcements are verified, one of the two least-loaded healthy executors
is chosen, a failure before the first token moves on to another, and every
answer carries the executor's signed receipt (headers X-Lloom-Executor and
X-Lloom-Receipt, and a "lloom" object in the body or the last chunk).

Any OpenAI SDK or tool can use it: set its base URL to http://LISTEN/v1.
Listening anywhere but loopback requires --api-key.`,
		Example: `  lloom gateway --listen 127.0.0.1:8000 --validator "$VALIDATOR_ADDRESS"
  curl -s localhost:8000/v1/models
  OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=unused your-openai-tool`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			peers, err := node.ParseBootstrapPeers(validators)
			if err != nil {
				return usagef("--validator: %v", err)
			}
			if cfg.Filters, err = filters.proto(false); err != nil {
				return err
			}
			cfg.MaxInputPriceWei, cfg.MaxOutputPriceWei = filters.maxInputPrice, filters.maxOutputPrice
			if err := positive("timeout", cfg.Timeout); err != nil {
				return err
			}
			cfg.Client.Network = a.network
			cfg.Client.Validators = peers
			cfg.Client.Logger = a.log
			cfg.Client.Listen, err = node.PortListenAddrs(port)
			if err != nil {
				return usagef("--port: %v", err)
			}
			cfg.Logger = a.log
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			reg, stopMetrics, err := mf.start(a, "gateway")
			if err != nil {
				return err
			}
			defer stopMetrics()
			cfg.Client.Metrics = reg
			g, err := gateway.New(cfg)
			if err != nil {
				return err
			}
			defer g.Close()
			if err := g.Listen(); err != nil {
				return usageError{err}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			err = g.Run(ctx)
			a.log.Info().Msg("Gateway stopped")
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "HTTP address of the OpenAI-compatible API (env LLOOM_GATEWAY_LISTEN)")
	fs.StringVar(&validators, "validator", "", "validators to ask, comma-separated: multiaddr with /p2p/, or host:port (env VALIDATOR_ADDRESS)")
	fs.StringVar(&cfg.APIKey, "api-key", "", "require this key as Authorization: Bearer KEY (env LLOOM_GATEWAY_API_KEY; required beyond loopback)")
	fs.IntVar(&port, "port", 0, "libp2p port, TCP and QUIC (0 picks free ports)")
	mf.register(fs)
	fs.IntVar(&cfg.MaxConcurrent, "max-concurrent", cfg.MaxConcurrent, "requests in flight at once; beyond it 429")
	durationVar(fs, &cfg.Timeout, "timeout", cfg.Timeout, "time for a request's answer to start (504 past it)")
	durationVar(fs, &cfg.ModelsRefresh, "models-refresh", cfg.ModelsRefresh, "how often the model list is read from the validators")
	fs.StringVar(&cfg.MaxFeeWei, "max-fee", "", "refuse executors whose minimum fee (wei) is above this")
	fs.StringVar(&filters.backend, "backend", "", "only executors with this backend type")
	fs.Uint32Var(&filters.minContext, "min-context", 0, "only models with at least this context length")
	fs.StringSliceVar(&filters.features, "feature", nil, "only models offering these features (repeatable)")
	fs.StringVar(&filters.maxInputPrice, "max-input-price", "", "only executors whose input token price (wei) is at most this")
	fs.StringVar(&filters.maxOutputPrice, "max-output-price", "", "only executors whose output token price (wei) is at most this")
	return cmd
}
