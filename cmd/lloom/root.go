package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/lloom/lloom/node"
	"github.com/lloom/lloom/pkg/config"
	lp "github.com/lloom/lloom/protocol"
)

// app is what every subcommand shares; the root command fills it before a
// subcommand runs.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	log            zerolog.Logger
	file           *config.File // nil without --config

	logLevel  string
	logFormat string
	network   string
	cfgPath   string
}

// envBindings maps flags to the environment variables that set them when
// the flag is not given. Per command, by flag name.
var globalEnv = map[string]string{
	"log-level":  "LOG_LEVEL",
	"log-format": "LOG_FORMAT",
	"network":    "LLOOM_NETWORK",
	"config":     "LLOOM_CONFIG",
	// Flags of several commands, bound wherever they exist.
	"metrics-listen": "LLOOM_METRICS_LISTEN",
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdin: os.Stdin, stdout: stdout, stderr: stderr, log: zerolog.Nop()}
	root := &cobra.Command{
		Use:   "lloom",
		Short: "A peer-to-peer network for LLM inference",
		Long: `lloom connects people who run LLMs (executors) with people who use them
(clients), through validators that check every announcement and keep a
registry of who serves which model, at what price and load.

One binary runs every role:
  lloom validator   keep the registry and answer queries
  lloom executor    serve models from your LLM backend, and announce them
  lloom client      find models and executors; chat through the network
  lloom gateway     the whole network behind one OpenAI-compatible endpoint`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		PersistentPreRunE: a.setup,
		// Args and RunE make cobra check the root's arguments like any
		// command's, so that an unknown command is a usage error too.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(flagError)
	pf := root.PersistentFlags()
	pf.StringVar(&a.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error (env LOG_LEVEL)")
	pf.StringVar(&a.logFormat, "log-format", "console", "log format: console or json (env LOG_FORMAT)")
	pf.StringVar(&a.network, "network", lp.DefaultNetwork, "network name; nodes of other networks are ignored (env LLOOM_NETWORK)")
	pf.StringVar(&a.cfgPath, "config", "", "TOML configuration file (env LLOOM_CONFIG)")
	root.AddCommand(
		newValidatorCommand(a),
		newExecutorCommand(a),
		newClientCommand(a),
		newGatewayCommand(a),
		newKeygenCommand(a),
		newVersionCommand(a),
		newDebugCommand(a),
	)
	usageArgs(root)
	return root
}

// usageArgs makes wrong arguments (an unknown command, a missing MODEL) a
// usage error that points to the command's help, as a wrong flag is. A
// command that groups others (lloom, lloom client) takes no argument but
// one of its commands, and suggests the nearest for a typo.
func usageArgs(c *cobra.Command) {
	if c.HasSubCommands() {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return unknownCommand(cmd, args[0])
			}
			return nil
		}
	} else if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usagef("%v (see '%s --help')", err, cmd.CommandPath())
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		usageArgs(sub)
	}
}

// setup applies environment variables and the config file to the flags
// the user did not give, then builds the logger.
func (a *app) setup(cmd *cobra.Command, _ []string) error {
	if err := applyEnv(cmd.Flags(), globalEnv); err != nil {
		return err
	}
	if env, ok := cmdEnv[cmd.Name()]; ok {
		if err := applyEnv(cmd.Flags(), env); err != nil {
			return err
		}
	}
	if a.cfgPath != "" {
		f, err := config.Load(a.cfgPath)
		if err != nil {
			return usageError{err}
		}
		a.file = f
		if err := applyFile(cmd.Flags(), f); err != nil {
			return err
		}
	}
	if err := lp.CheckNetworkName(a.network); err != nil {
		return usagef("--network: %v", err)
	}
	log, err := node.NewLogger(node.LogConfig{Level: a.logLevel, Format: a.logFormat, Out: a.stderr})
	if err != nil {
		return usagef("%v", err)
	}
	a.log = log
	node.BridgeLibp2pLogs(log)
	return nil
}

// cmdEnv holds per-command environment bindings, by command name.
var cmdEnv = map[string]map[string]string{
	"executor":        {"validator": "VALIDATOR_ADDRESS"},
	"discover":        {"validator": "VALIDATOR_ADDRESS"},
	"list":            {"validator": "VALIDATOR_ADDRESS"},
	"query":           {"validator": "VALIDATOR_ADDRESS"},
	"stats":           {"validator": "VALIDATOR_ADDRESS"},
	"chat":            {"validator": "VALIDATOR_ADDRESS"},
	"complete":        {"validator": "VALIDATOR_ADDRESS"},
	"gateway":         {"validator": "VALIDATOR_ADDRESS", "listen": "LLOOM_GATEWAY_LISTEN", "api-key": "LLOOM_GATEWAY_API_KEY"},
	"publish-invalid": {"validator": "VALIDATOR_ADDRESS"},
	"watch":           {"validator": "VALIDATOR_ADDRESS"},
	"validator":       {"http-listen": "LLOOM_HTTP_LISTEN"},
}

func applyEnv(fs *pflag.FlagSet, bindings map[string]string) error {
	for name, env := range bindings {
		f := fs.Lookup(name)
		v, ok := os.LookupEnv(env)
		if f == nil || f.Changed || !ok || strings.TrimSpace(v) == "" {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return usagef("%s=%q (for --%s): %v", env, v, name, err)
		}
		if name == "validator" { // checked here, so that the error names the variable
			if _, err := node.ParseBootstrapPeers(v); err != nil {
				return usagef("%s: %v", env, err)
			}
		}
	}
	return nil
}

// setIfUnset gives a flag the config file's value unless the flag or its
// environment variable already set it.
func setIfUnset(fs *pflag.FlagSet, name, value, key string) error {
	f := fs.Lookup(name)
	if f == nil || f.Changed || value == "" {
		return nil
	}
	if err := fs.Set(name, value); err != nil {
		return usagef("config key %s = %q: %v", key, value, err)
	}
	return nil
}

// derefText is the text of *p for a pointer to a bool, int or int64 set
// by the config file, "" for a nil one.
func derefText(p any) string {
	switch x := p.(type) {
	case *bool:
		if x != nil {
			return fmt.Sprint(*x)
		}
	case *int:
		if x != nil {
			return fmt.Sprint(*x)
		}
	case *int64:
		if x != nil {
			return fmt.Sprint(*x)
		}
	}
	return ""
}

func applyFile(fs *pflag.FlagSet, f *config.File) error {
	n, v, e := f.Node, f.Validator, f.Executor
	type kv struct{ flag, value, key string }
	set := []kv{
		{"network", n.Network, "node.network"},
		{"identity", n.Identity, "node.identity"},
		{"log-level", n.LogLevel, "node.log_level"},
		{"log-format", n.LogFormat, "node.log_format"},
		{"validator", strings.Join(n.Validators, ","), "node.validators"},
		{"addr-file", v.AddrFile, "validator.addr_file"},
		{"http-listen", v.HTTPListen, "validator.http_listen"},
		{"metrics-listen", n.MetricsListen, "node.metrics_listen"},
		{"evm-address", e.EVMAddress, "executor.evm_address"},
	}
	set = append(set, kv{"listen", strings.Join(n.Listen, ","), "node.listen"})
	if n.Port != nil {
		set = append(set, kv{"port", fmt.Sprint(*n.Port), "node.port"})
	}
	if v.MaxExecutors != nil {
		set = append(set, kv{"max-executors", fmt.Sprint(*v.MaxExecutors), "validator.max_executors"})
	}
	if v.MaxExecutorsPerIP != nil {
		set = append(set, kv{"max-executors-per-ip", fmt.Sprint(*v.MaxExecutorsPerIP), "validator.max_executors_per_ip"})
	}
	if v.QueryRate != nil {
		set = append(set, kv{"query-rate", fmt.Sprint(*v.QueryRate), "validator.query_rate"})
	}
	if v.SubscribeAnnouncements != nil {
		set = append(set, kv{"subscribe-announcements", fmt.Sprint(*v.SubscribeAnnouncements), "validator.subscribe_announcements"})
	}
	if e.AnnounceModels != nil {
		set = append(set, kv{"announce-models", fmt.Sprint(*e.AnnounceModels), "executor.announce_models"})
	}
	for _, r := range []struct {
		flag, key string
		v         any // a nil pointer: unset
	}{
		{"relay-service", "validator.relay_service", v.RelayService},
		{"relay-max-reservations", "validator.relay_max_reservations", v.RelayMaxReservations},
		{"relay-max-circuits", "validator.relay_max_circuits", v.RelayMaxCircuits},
		{"relay-max-reservations-per-ip", "validator.relay_max_reservations_per_ip", v.RelayMaxReservationsPerIP},
		{"relay-limit-data", "validator.relay_limit_data", v.RelayLimitData},
	} {
		if s := derefText(r.v); s != "" {
			set = append(set, kv{r.flag, s, r.key})
		}
	}
	for _, d := range []struct {
		flag, key string
		v         any
	}{
		{"stale-after", "validator.stale_after", f.StaleAfter()},
		{"remove-after", "validator.remove_after", f.RemoveAfter()},
		{"heartbeat-interval", "executor.heartbeat_interval", f.HeartbeatInterval()},
		{"relay-limit-duration", "validator.relay_limit_duration", f.RelayLimitDuration()},
	} {
		if s := fmt.Sprint(d.v); s != "0s" {
			set = append(set, kv{d.flag, s, d.key})
		}
	}
	for _, s := range set {
		if err := setIfUnset(fs, s.flag, s.value, s.key); err != nil {
			return err
		}
	}
	return nil
}
