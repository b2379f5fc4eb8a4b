package executor

import (
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// The stream deadlines of DESIGN §8 are the defaults; a setting that
// cannot work is refused with a line naming it.
func TestStreamDeadlines(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.RequestTimeout != 10*time.Second || cfg.WriteTimeout != 30*time.Second {
		t.Fatalf("defaults: request %s, write %s; want the contract's 10s and 30s", cfg.RequestTimeout, cfg.WriteTimeout)
	}
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Key = key
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults with a key: %v", err)
	}
	for _, tt := range []struct {
		name   string
		mutate func(*Config)
	}{
		{"request", func(c *Config) { c.RequestTimeout = 0 }},
		{"write", func(c *Config) { c.WriteTimeout = -time.Second }},
	} {
		c := cfg
		tt.mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.name+" timeout") {
			t.Errorf("%s timeout not positive: %v, want an error naming it", tt.name, err)
		}
	}
}

// A value the announcement would carry and every validator would refuse
// is refused at start, in the validator's words.
func TestValidateChecksTheAnnouncedEVMAddress(t *testing.T) {
	cfg := DefaultConfig()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Key = key
	cfg.EVMAddress = "0x123"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `evm_address "0x123": want 0x and 40 hex digits`) {
		t.Fatalf("EVMAddress 0x123: %v, want the announcement check's refusal", err)
	}
	cfg.EVMAddress = "0x52908400098527886E0F7030069857D2E4169EE7"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a valid EVM address: %v", err)
	}
}
