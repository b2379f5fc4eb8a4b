package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The relay service's limits come from the config file's [validator]
// relay_* keys; a flag overrides a key.
func TestRelayLimitsFromFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "validator.toml")
	if err := os.WriteFile(file, []byte(`[validator]
relay_service = false
relay_max_reservations = 200
relay_max_circuits = 8
relay_max_reservations_per_ip = 4
relay_limit_data = 1048576
relay_limit_duration = "5m"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	root := newRootCommand(io.Discard, io.Discard)
	cmd, args, err := root.Find([]string{"validator", "--config", file, "--relay-max-circuits", "32"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	if err := root.PersistentPreRunE(cmd, nil); err != nil {
		t.Fatalf("setup: %v", err)
	}
	for flag, want := range map[string]string{
		"relay-service":                 "false",
		"relay-max-reservations":        "200",
		"relay-max-circuits":            "32", // the flag wins
		"relay-max-reservations-per-ip": "4",
		"relay-limit-data":              "1048576",
		"relay-limit-duration":          "5m0s",
	} {
		if got := cmd.Flags().Lookup(flag).Value.String(); got != want {
			t.Errorf("--%s = %s, want %s", flag, got, want)
		}
	}
}

func TestRelayLimitDurationFromFileChecked(t *testing.T) {
	file := filepath.Join(t.TempDir(), "validator.toml")
	if err := os.WriteFile(file, []byte("[validator]\nrelay_limit_duration = \"soon\"\n"), 0o600); err != nil {
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
	err = root.PersistentPreRunE(cmd, nil)
	if err == nil || !strings.Contains(err.Error(), "relay_limit_duration") {
		t.Fatalf("error %v, want one naming relay_limit_duration", err)
	}
}
