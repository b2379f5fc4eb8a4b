package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lloom/lloom/node/executor"
	"github.com/lloom/lloom/pkg/config"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

func newExecutorCommand(a *app) *cobra.Command {
	cfg := executor.DefaultConfig()
	var (
		nf        netFlags
		rf        reachFlags
		mf        metricsFlags
		models    []string
		debugLoad []string
		bf        backendFlags
	)
	cmd := &cobra.Command{
		Use:   "executor",
		Short: "Run an executor: serve models from your LLM backend and announce them",
		Long: `Run an executor. It serves inference requests from the network with the
OpenAI-compatible backend at --backend-url (Ollama, LM Studio, vLLM,
llama.cpp's server, or any OpenAI-compatible API), announces the models it
serves in signed announcements once a validator has joined the topic,
sends a heartbeat with each model's load every --heartbeat-interval (and
at once when a model becomes overloaded or recovers), and withdraws its
announcement (REMOVAL) on SIGINT or SIGTERM.

Models come from --config and --model; with neither, the executor
announces what the backend lists (GET /v1/models) and follows that list.
Without a backend it runs announce-only: it announces its models and
answers their requests with 6003.

When the --config file changes, or on SIGHUP, it reloads the file and
announces the whole new model set. A file that does not load is reported
and the current models stay.`,
		Example: `  lloom executor --backend-url http://127.0.0.1:11434/v1 --validator 127.0.0.1:8080
  lloom executor --backend-url http://127.0.0.1:11434/v1 --model llama3.2:3b --capacity 2 --validator 127.0.0.1:8080
  VALIDATOR_ADDRESS=/ip4/127.0.0.1/tcp/8080/p2p/12D3KooW... lloom executor --config executor.toml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Validators, err = nf.bootstrap(); err != nil {
				return err
			}
			if err := positive("heartbeat-interval", cfg.HeartbeatInterval); err != nil {
				return err
			}
			// Checked as every validator checks the announcement, so that
			// a typo stops the start instead of every announcement.
			if err := lp.CheckEVMAddress(cfg.EVMAddress); err != nil {
				return usagef("--evm-address: %s", lp.WithoutCode(err))
			}
			if cfg.Models, err = executorModels(a.file, models, bf.capacity); err != nil {
				return usageError{err}
			}
			if err := bf.fill(cmd, a.file, models, &cfg); err != nil {
				return err
			}
			id, err := a.fillNode(&nf, "executor", &cfg.Config)
			if err != nil {
				return err
			}
			if err := rf.apply(&cfg.Config); err != nil {
				return err
			}
			// Next to the key: the numbers belong to that identity.
			cfg.SeqFile = id.Path + ".seq"
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			if len(cfg.Validators) == 0 {
				a.log.Warn().Msg("No validator given (--validator or VALIDATOR_ADDRESS): waiting for validators to dial in")
			}
			if len(cfg.Models) == 0 && cfg.AnnounceModels && !cfg.Discover {
				a.log.Warn().Msg("No models configured (--config or --model) and no --backend-url to list them from: announcing an empty model set")
			}
			reg, stopMetrics, err := mf.start(a, "executor")
			if err != nil {
				return err
			}
			defer stopMetrics()
			cfg.Metrics = reg
			e, err := executor.New(cfg)
			if err != nil {
				return err
			}
			defer e.Close()
			if err := applyLoads(e, a.file, debugLoad); err != nil {
				return usageError{err}
			}
			if err := a.saveIdentity(id, e.ID().String()); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// SIGHUP asks for a reload. It is caught before Run, so that it
			// never kills the executor (without a REMOVAL), file or not.
			hup := hangups()
			defer signal.Stop(hup)
			if a.file != nil {
				go watchConfig(ctx, a, e, models, debugLoad, bf, hup)
			} else {
				go ignoreHangup(ctx, a, hup, "no --config file to reload")
			}
			err = e.Run(ctx)
			a.log.Info().Msg("Executor stopped")
			return err
		},
	}
	fs := cmd.Flags()
	nf.register(fs, "executor", 0, "validators to bootstrap from, comma-separated: multiaddr with /p2p/, or host:port (env VALIDATOR_ADDRESS)")
	rf.registerExecutor(fs, &cfg.Config)
	mf.register(fs)
	fs.StringArrayVar(&models, "model", nil, "serve this model id with default settings (repeatable; the --config file describes models fully)")
	durationVar(fs, &cfg.HeartbeatInterval, "heartbeat-interval", cfg.HeartbeatInterval, "time between heartbeats (Go duration or seconds)")
	fs.BoolVar(&cfg.AnnounceModels, "announce-models", cfg.AnnounceModels, "announce models and send heartbeats (false: run silently)")
	fs.StringVar(&cfg.EVMAddress, "evm-address", "", "payment address announced with the models (0x and 40 hex digits)")
	bf.register(fs)
	fs.StringArrayVar(&debugLoad, "debug-load", nil, "report MODEL=ACTIVE/QUEUED as the model's load, for testing until inference reports real load (repeatable; also [debug.load] in the config file)")
	return cmd
}

// executorModels merges the config file's models with --model ids; a model
// in both keeps the file's description.
func executorModels(f *config.File, ids []string, capacity uint32) ([]*pb.ModelDescriptor, error) {
	var out []*pb.ModelDescriptor
	seen := map[string]bool{}
	if f != nil {
		ds, err := f.Descriptors()
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			seen[d.GetModelId()] = true
		}
		out = append(out, ds...)
	}
	for _, id := range ids {
		if !lp.ValidModelID(id) {
			return nil, usagef("--model %q: want 1-128 characters of [A-Za-z0-9._:/@-]", id)
		}
		if !seen[id] {
			seen[id] = true
			m := config.QuickModel(id)
			if capacity > 0 {
				m.Capacity = capacity
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// watchConfig reloads the config file when it changes (checked every
// second) or on SIGHUP, and hands the executor the whole new model set.
func watchConfig(ctx context.Context, a *app, e *executor.Executor, ids, loads []string, bf backendFlags, hup <-chan os.Signal) {
	path := a.file.Path()
	last := a.file.Stamp()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		reason := ""
		select {
		case <-ctx.Done():
			return
		case <-hup:
			reason = "SIGHUP"
		case <-t.C:
			if s := config.StampOf(path); s != last {
				last = s
				reason = "file changed"
			}
		}
		if reason == "" {
			continue
		}
		log := a.log.With().Str("config", path).Str("reason", reason).Logger()
		f, err := config.Load(path)
		if err != nil {
			log.Error().Err(err).Msg("Config not reloaded; keeping the current models")
			continue
		}
		models, err := executorModels(f, ids, bf.capacity)
		if err == nil {
			err = e.Configure(models, servingOf(f, ids, bf.queue, bf.queueSet))
		}
		if err != nil {
			log.Error().Err(err).Msg("Config not reloaded; keeping the current models")
			continue
		}
		if err := applyLoads(e, f, loads); err != nil {
			log.Error().Err(err).Msg("Debug load not applied")
		} else if err := e.Heartbeat(ctx); err != nil {
			log.Warn().Err(err).Msg("Heartbeat not published")
		}
		log.Info().Int("models", len(models)).Msg("Config reloaded")
	}
}

// applyLoads sets the load of each model named in the file's [debug.load]
// and in --debug-load (which wins).
func applyLoads(e *executor.Executor, f *config.File, flags []string) error {
	loads := map[string]config.ModelLoad{}
	if f != nil {
		fl, err := f.DebugLoads()
		if err != nil {
			return err
		}
		loads = fl
	}
	for _, s := range flags {
		model, v, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("--debug-load %q: want MODEL=ACTIVE/QUEUED", s)
		}
		l, err := config.ParseLoad(v)
		if err != nil {
			return fmt.Errorf("--debug-load %q: %w", s, err)
		}
		loads[model] = l
	}
	for model, l := range loads {
		if err := e.SetLoad(model, l.Active, l.Queued, 0); err != nil {
			return fmt.Errorf("debug load of %q: %w", model, err)
		}
	}
	return nil
}

// hangups catches SIGHUP from now on, so that it cannot kill the process.
func hangups() chan os.Signal {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup
}

// ignoreHangup says, for each SIGHUP until ctx ends, why it does nothing.
func ignoreHangup(ctx context.Context, a *app, hup <-chan os.Signal, why string) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			a.log.Warn().Msg("SIGHUP: " + why)
		}
	}
}
