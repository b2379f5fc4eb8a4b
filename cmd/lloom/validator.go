package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/lloom/lloom/node/validator"
)

func newValidatorCommand(a *app) *cobra.Command {
	cfg := validator.DefaultConfig()
	var nf netFlags
	var rf reachFlags
	var mf metricsFlags
	cmd := &cobra.Command{
		Use:   "validator",
		Short: "Run a validator: check announcements, keep the registry, answer queries",
		Long: `Run a validator. It subscribes to the network's announcement topic, checks
every announcement and heartbeat (signature, sequence, freshness, limits),
keeps the registry of executors and their models with their health, and
answers client queries over /lloom/query/1.0.0.

It prints its full multiaddrs at start; executors and clients bootstrap
from one of them (or from host:port).`,
		Example: `  lloom validator --port 8080 --addr-file /tmp/validator.addr
  lloom validator --port 9090 --validator /ip4/10.0.0.5/tcp/8080/p2p/12D3KooW...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Peers, err = nf.bootstrap(); err != nil {
				return err
			}
			if err := positive("stale-after", cfg.Registry.StaleAfter); err != nil {
				return err
			}
			if err := positive("remove-after", cfg.Registry.RemoveAfter); err != nil {
				return err
			}
			if cfg.Registry.RemoveAfter <= cfg.Registry.StaleAfter {
				return usagef("--remove-after %s must be longer than --stale-after %s", cfg.Registry.RemoveAfter, cfg.Registry.StaleAfter)
			}
			if cfg.Registry.MaxExecutors <= 0 {
				return usagef("--max-executors %d must be positive", cfg.Registry.MaxExecutors)
			}
			if cfg.Registry.MaxPerIP < 0 {
				return usagef("--max-executors-per-ip %d must be 0 (no limit) or positive", cfg.Registry.MaxPerIP)
			}
			if cfg.QueryRate < 0 {
				return usagef("--query-rate %d must be 0 (off) or positive", cfg.QueryRate)
			}
			if cfg.WatchSubscribers <= 0 {
				return usagef("--watch-subscribers %d must be positive", cfg.WatchSubscribers)
			}
			if _, _, err := net.SplitHostPort(cfg.HTTPListen); cfg.HTTPListen != "" && err != nil {
				return usagef("--http-listen %q: want HOST:PORT, e.g. 127.0.0.1:8081", cfg.HTTPListen)
			}
			id, err := a.fillNode(&nf, "validator", &cfg.Config)
			if err != nil {
				return err
			}
			if err := rf.apply(&cfg.Config); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			reg, stopMetrics, err := mf.start(a, "validator")
			if err != nil {
				return err
			}
			defer stopMetrics()
			cfg.Metrics = reg
			v, err := validator.New(cfg)
			if err != nil {
				return err
			}
			defer v.Close()
			if err := a.saveIdentity(id, v.ID().String()); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "Validator peer id:", v.ID())
			fmt.Fprintln(a.stdout, "Listening on:")
			for _, addr := range v.Addrs() {
				fmt.Fprintln(a.stdout, "  "+addr)
			}
			if addr := v.HTTPAddr(); addr != "" {
				fmt.Fprintln(a.stdout, "Dashboard: http://"+addr+"/")
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			hup := hangups()
			defer signal.Stop(hup)
			go ignoreHangup(ctx, a, hup, "the validator has nothing to reload")
			err = v.Run(ctx)
			a.log.Info().Msg("Validator stopped")
			return err
		},
	}
	fs := cmd.Flags()
	nf.register(fs, "validator", 8080, "other validators to peer with, comma-separated (multiaddr with /p2p/, or host:port)")
	rf.registerValidator(fs, &cfg.Config)
	mf.register(fs)
	fs.StringVar(&cfg.AddrFile, "addr-file", "", "write the full multiaddrs to this file, one per line")
	durationVar(fs, &cfg.Registry.StaleAfter, "stale-after", cfg.Registry.StaleAfter, "mark an executor stale after this long without a valid heartbeat")
	durationVar(fs, &cfg.Registry.RemoveAfter, "remove-after", cfg.Registry.RemoveAfter, "remove an executor after this long without a valid heartbeat")
	fs.IntVar(&cfg.Registry.MaxExecutors, "max-executors", cfg.Registry.MaxExecutors, "registry size limit; when full, a newly verified executor evicts an unverified, stale or crowded entry")
	fs.IntVar(&cfg.Registry.MaxPerIP, "max-executors-per-ip", cfg.Registry.MaxPerIP, "verified executors per observed IPv4 address or IPv6 /64, loopback included; 0 = no limit")
	fs.IntVar(&cfg.QueryRate, "query-rate", cfg.QueryRate, "query units per second per peer, burst twice that (a query costs 1 unit + 1 per 64 KiB answered + 1 per 32,768 registry entries examined); 0 turns the limit off")
	fs.BoolVar(&cfg.Subscribe, "subscribe-announcements", cfg.Subscribe, "subscribe to the announcement topic (false: answer queries only)")
	fs.StringVar(&cfg.HTTPListen, "http-listen", "", "serve the read-only HTTP API (/api/v1/...) and the dashboard (/) at this host:port, e.g. 127.0.0.1:8081; off by default, loopback recommended (env LLOOM_HTTP_LISTEN)")
	fs.IntVar(&cfg.WatchSubscribers, "watch-subscribers", cfg.WatchSubscribers, "change feed subscribers at once, over /lloom/watch/1.0.0 and the HTTP event stream together")
	return cmd
}
