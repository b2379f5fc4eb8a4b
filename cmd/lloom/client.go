package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/node/client"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// clientFlags are shared by the client subcommands.
type clientFlags struct {
	validators string
	json       bool
	timeout    time.Duration
	filters    filterFlags
	// metrics, for a command that has --metrics-listen (client watch),
	// serves the client's metrics while it runs.
	metrics *metricsFlags
}

type filterFlags struct {
	backend            string
	minContext         uint32
	features           []string
	maxInputPrice      string
	maxOutputPrice     string
	includeUnavailable bool
	includeUnverified  bool
}

// register adds the flags every client command uses.
func (c *clientFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.validators, "validator", "", "validators to ask, comma-separated: multiaddr with /p2p/, or host:port (env VALIDATOR_ADDRESS)")
	fs.BoolVar(&c.json, "json", false, "print JSON for scripts")
	durationVar(fs, &c.timeout, "timeout", 10*time.Second, "time to reach the validators and get each answer")
}

// registerFilters adds the flags that choose executors, for the commands
// that use them (not stats).
func (c *clientFlags) registerFilters(fs *pflag.FlagSet) {
	fs.StringVar(&c.filters.backend, "backend", "", "only executors with this backend type")
	fs.Uint32Var(&c.filters.minContext, "min-context", 0, "only models with at least this context length")
	fs.StringSliceVar(&c.filters.features, "feature", nil, "only models offering these features (repeatable)")
	fs.StringVar(&c.filters.maxInputPrice, "max-input-price", "", "only models whose input token price (wei) is at most this")
	fs.StringVar(&c.filters.maxOutputPrice, "max-output-price", "", "only models whose output token price (wei) is at most this")
	fs.BoolVar(&c.filters.includeUnavailable, "include-unavailable", false, "include models their executor marks unavailable")
	fs.BoolVar(&c.filters.includeUnverified, "include-unverified", false, "include executors the validators have not reached yet (liveness check pending or failed)")
}

func (f filterFlags) proto(includeStale bool) (*pb.QueryFilters, error) {
	for name, v := range map[string]string{"max-input-price": f.maxInputPrice, "max-output-price": f.maxOutputPrice} {
		if err := lp.CheckPrice(v); err != nil {
			return nil, usagef("--%s %q: want a whole number of wei", name, v)
		}
	}
	return &pb.QueryFilters{
		BackendType:        f.backend,
		MinContextLength:   f.minContext,
		RequiredFeatures:   f.features,
		MaxInputPriceWei:   f.maxInputPrice,
		MaxOutputPriceWei:  f.maxOutputPrice,
		IncludeStale:       includeStale,
		IncludeUnavailable: f.includeUnavailable,
		IncludeUnverified:  f.includeUnverified,
	}, nil
}

func newClientCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "client",
		Short: "Ask validators which models exist and which executors serve them",
		Long: `Ask every validator given which models exist and which executors serve
them. Each executor's signed announcement is verified here, so a validator
cannot make an executor say what it did not; the answers of several
validators are merged (the newest announcement wins).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(
		newModelsCommand(a, "discover", "Models with at least one live executor", false),
		newModelsCommand(a, "list", "Every model, stale executors included", true),
		newQueryCommand(a),
		newStatsCommand(a),
		newWatchCommand(a),
		newInferenceCommand(a, true),
		newInferenceCommand(a, false),
	)
	return cmd
}

// withClient builds a client from the flags, runs f, and reports
// validators that did not answer.
func withClient(a *app, cf *clientFlags, f func(ctx context.Context, c *client.Client) error) error {
	peers, err := node.ParseBootstrapPeers(cf.validators)
	if err != nil {
		return usagef("--validator: %v", err)
	}
	if err := positive("timeout", cf.timeout); err != nil {
		return err
	}
	cfg := client.DefaultConfig()
	cfg.Network = a.network
	cfg.Validators = peers
	cfg.Timeout = cf.timeout
	cfg.Logger = a.log
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	if cf.metrics != nil {
		reg, stopMetrics, err := cf.metrics.start(a, "client")
		if err != nil {
			return err
		}
		defer stopMetrics()
		cfg.Metrics = reg
	}
	c, err := client.New(cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := f(ctx, c); err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return err
	}
	return nil
}

// errInterrupted is a command stopped by SIGINT or SIGTERM (exit 130).
var errInterrupted = fmt.Errorf("interrupted: %w", context.Canceled)

func warnFailures(a *app, failures []client.ValidatorError, rejected []string) {
	for _, f := range failures {
		fmt.Fprintf(a.stderr, "warning: %s\n", oneLine(f))
	}
	for _, r := range rejected {
		fmt.Fprintf(a.stderr, "warning: %s\n", r)
	}
}

func newModelsCommand(a *app, name, short string, includeStale bool) *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   name,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filters, err := cf.filters.proto(includeStale)
			if err != nil {
				return err
			}
			return withClient(a, &cf, func(ctx context.Context, c *client.Client) error {
				res, err := c.ListModelsWithExecutors(ctx, filters)
				if err != nil {
					return err
				}
				warnFailures(a, res.Failures, res.Rejected)
				if cf.json {
					return writeJSON(a.stdout, modelsJSON(res))
				}
				printModels(a.stdout, res, len(cf.validatorsList()))
				return nil
			})
		},
	}
	cf.register(cmd.Flags())
	cf.registerFilters(cmd.Flags())
	return cmd
}

func (c *clientFlags) validatorsList() []node.BootstrapPeer {
	p, _ := node.ParseBootstrapPeers(c.validators)
	return p
}

// errNoExecutors is returned by query when no executor serves the model.
var errNoExecutors = errors.New("no executor serves this model")

// errAllStale is returned by query when every executor serving the model
// is stale: listed, but none has been heard from lately.
var errAllStale = errors.New("every executor serving it is stale (no heartbeat lately); --include-stale accepts them")

func newQueryCommand(a *app) *cobra.Command {
	var (
		cf           clientFlags
		excludeStale bool
		includeStale bool
	)
	cmd := &cobra.Command{
		Use:   "query MODEL",
		Short: "Executors serving MODEL, least loaded first",
		Long: `List the executors that serve MODEL, least loaded first: the first one is
where a request should go. Stale executors are listed last, marked stale.
Exits non-zero when no executor serves the model, or when every one that
does is stale (unless --include-stale).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			model := args[0]
			if !lp.ValidModelID(model) {
				return usagef("model id %q: want 1-128 characters of [A-Za-z0-9._:/@-]", model)
			}
			filters, err := cf.filters.proto(!excludeStale)
			if err != nil {
				return err
			}
			return withClient(a, &cf, func(ctx context.Context, c *client.Client) error {
				res, err := c.FindModel(ctx, model, filters)
				if err != nil {
					return err
				}
				warnFailures(a, res.Failures, res.Rejected)
				if cf.json {
					if err := writeJSON(a.stdout, modelJSON(res)); err != nil {
						return err
					}
				} else {
					printModel(a.stdout, res)
				}
				if len(res.Executors) == 0 {
					return fmt.Errorf("model %q: %w", model, errNoExecutors)
				}
				if !includeStale && allStale(res.Executors) {
					return fmt.Errorf("model %q: %w", model, errAllStale)
				}
				return nil
			})
		},
	}
	cf.register(cmd.Flags())
	cf.registerFilters(cmd.Flags())
	cmd.Flags().BoolVar(&excludeStale, "exclude-stale", false, "leave out stale executors")
	cmd.Flags().BoolVar(&includeStale, "include-stale", false, "exit 0 even when every executor listed is stale")
	return cmd
}

func allStale(xs []*client.Executor) bool {
	for _, x := range xs {
		if x.Status != pb.ExecutorStatus_EXECUTOR_STATUS_STALE {
			return false
		}
	}
	return true
}

func newStatsCommand(a *app) *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Validator statistics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(a, &cf, func(ctx context.Context, c *client.Client) error {
				res, err := c.Stats(ctx)
				if err != nil {
					return err
				}
				warnFailures(a, res.Failures, nil)
				if cf.json {
					return writeJSON(a.stdout, statsJSON(res))
				}
				printStats(a.stdout, res)
				return nil
			})
		},
	}
	cf.register(cmd.Flags())
	return cmd
}
