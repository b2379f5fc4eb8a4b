package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/lloom/lloom/pkg/config"
)

// Flags override environment variables, which override the config file,
// which overrides the defaults.
func TestPrecedence(t *testing.T) {
	fs := pflag.NewFlagSet("executor", pflag.ContinueOnError)
	var (
		network, validator, level string
		interval                  time.Duration
		listen                    []string
	)
	fs.StringVar(&network, "network", "lloom", "")
	fs.StringVar(&validator, "validator", "", "")
	fs.StringVar(&level, "log-level", "info", "")
	fs.StringSliceVar(&listen, "listen", nil, "")
	durationVar(fs, &interval, "heartbeat-interval", 10*time.Second, "")
	if err := fs.Parse([]string{"--network", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LLOOM_NETWORK", "from-env")
	t.Setenv("VALIDATOR_ADDRESS", "127.0.0.1:1111")
	if err := applyEnv(fs, globalEnv); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(fs, cmdEnv["executor"]); err != nil {
		t.Fatal(err)
	}
	f, err := config.Parse([]byte(`
[node]
network = "from-file"
validators = ["127.0.0.1:2222"]
log_level = "debug"
listen = ["/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/2"]
[executor]
heartbeat_interval = 5
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := applyFile(fs, f); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"network (flag over env and file)", network, "from-flag"},
		{"validator (env over file)", validator, "127.0.0.1:1111"},
		{"log level (file over default)", level, "debug"},
		{"heartbeat interval (file, seconds)", interval.String(), "5s"},
		{"listen (file list)", strings.Join(listen, ","), "/ip4/127.0.0.1/tcp/1,/ip4/127.0.0.1/tcp/2"},
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
