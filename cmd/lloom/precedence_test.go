package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// Flags override environment variables, which override the config file,
// which overrides the defaults. The test goes through the root command's
// own setup, as a user's command line does.
func TestPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "executor.toml")
	if err := os.WriteFile(file, []byte(`
[node]
network = "from-file"
validators = ["127.0.0.1:2222"]
log_level = "debug"
listen = ["/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/2"]
[executor]
heartbeat_interval = 5
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LLOOM_NETWORK", "from-env")
	t.Setenv("VALIDATOR_ADDRESS", "127.0.0.1:1111")
	t.Setenv("LLOOM_CONFIG", file)
	root := newRootCommand(io.Discard, io.Discard)
	cmd, args, err := root.Find([]string{"executor", "--network", "from-flag"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	if err := root.PersistentPreRunE(cmd, nil); err != nil {
		t.Fatalf("setup: %v", err)
	}
	flag := func(name string) string { return cmd.Flags().Lookup(name).Value.String() }
	for _, c := range []struct{ name, got, want string }{
		{"network (flag over env and file)", flag("network"), "from-flag"},
		{"validator (env over file)", flag("validator"), "127.0.0.1:1111"},
		{"log level (file over default)", flag("log-level"), "debug"},
		{"heartbeat interval (file, seconds)", flag("heartbeat-interval"), "5s"},
		{"listen (file list)", flag("listen"), "[/ip4/127.0.0.1/tcp/1,/ip4/127.0.0.1/tcp/2]"},
		{"port (default, nothing set it)", flag("port"), "0"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestBadEnvironmentNamesTheVariable(t *testing.T) {
	fs := pflag.NewFlagSet("executor", pflag.ContinueOnError)
	var validator string
	var interval time.Duration
	fs.StringVar(&validator, "validator", "", "")
	durationVar(fs, &interval, "heartbeat-interval", time.Second, "")
	t.Setenv("VALIDATOR_ADDRESS", "not-an-address")
	err := applyEnv(fs, map[string]string{"validator": "VALIDATOR_ADDRESS"})
	var u usageError
	if !errors.As(err, &u) || !strings.Contains(err.Error(), "VALIDATOR_ADDRESS") {
		t.Fatalf("error %v, want a usage error naming VALIDATOR_ADDRESS", err)
	}
	t.Setenv("HB", "soon")
	err = applyEnv(fs, map[string]string{"heartbeat-interval": "HB"})
	if !errors.As(err, &u) || !strings.Contains(err.Error(), `HB="soon"`) {
		t.Fatalf("error %v, want a usage error naming HB", err)
	}
}

// The validator's admission limits come from the config file too.
func TestValidatorLimitsFromFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "validator.toml")
	if err := os.WriteFile(file, []byte("[validator]\nmax_executors = 500\nmax_executors_per_ip = 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := newRootCommand(io.Discard, io.Discard)
	cmd, args, err := root.Find([]string{"validator", "--config", file})
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	if err := root.PersistentPreRunE(cmd, nil); err != nil {
		t.Fatalf("setup: %v", err)
	}
	for flag, want := range map[string]string{"max-executors": "500", "max-executors-per-ip": "3"} {
		if got := cmd.Flags().Lookup(flag).Value.String(); got != want {
			t.Errorf("--%s = %s, want %s from the file", flag, got, want)
		}
	}
}

// The listen addresses come from the config file too: [validator]
// http_listen, and [node] metrics_listen for whichever role reads the file;
// LLOOM_METRICS_LISTEN and --metrics-listen override it.
func TestListenAddressesFromFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "node.toml")
	if err := os.WriteFile(file, []byte("[node]\nmetrics_listen = \"127.0.0.1:9400\"\n[validator]\nhttp_listen = \"127.0.0.1:8081\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args          []string
		env           string
		metrics, http string
	}{
		{[]string{"validator"}, "", "127.0.0.1:9400", "127.0.0.1:8081"},
		{[]string{"executor"}, "", "127.0.0.1:9400", ""},
		{[]string{"gateway"}, "", "127.0.0.1:9400", ""},
		{[]string{"validator", "--http-listen", "127.0.0.1:1"}, "127.0.0.1:9500", "127.0.0.1:9500", "127.0.0.1:1"},
		{[]string{"executor", "--metrics-listen", "127.0.0.1:9600"}, "127.0.0.1:9500", "127.0.0.1:9600", ""},
	} {
		t.Run(strings.Join(c.args, " ")+" env "+c.env, func(t *testing.T) {
			t.Setenv("LLOOM_METRICS_LISTEN", c.env)
			t.Setenv("LLOOM_HTTP_LISTEN", "")
			root := newRootCommand(io.Discard, io.Discard)
			cmd, args, err := root.Find(append(c.args, "--config", file))
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.ParseFlags(args); err != nil {
				t.Fatal(err)
			}
			if err := root.PersistentPreRunE(cmd, nil); err != nil {
				t.Fatalf("setup: %v", err)
			}
			if got := cmd.Flags().Lookup("metrics-listen").Value.String(); got != c.metrics {
				t.Errorf("--metrics-listen = %q, want %q", got, c.metrics)
			}
			if f := cmd.Flags().Lookup("http-listen"); f != nil && f.Value.String() != c.http {
				t.Errorf("--http-listen = %q, want %q", f.Value.String(), c.http)
			}
		})
	}
}
