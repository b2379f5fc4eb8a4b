package registry

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string // "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"stale zero", func(c *Config) { c.StaleAfter = 0 }, "stale-after must be positive"},
		{"stale negative", func(c *Config) { c.StaleAfter = -time.Second }, "stale-after must be positive"},
		{"remove equal to stale", func(c *Config) { c.RemoveAfter = c.StaleAfter }, "remove-after (30s) must be longer than stale-after (30s)"},
		{"remove shorter", func(c *Config) { c.RemoveAfter = time.Second }, "remove-after (1s) must be longer"},
		{"max zero", func(c *Config) { c.MaxExecutors = 0 }, "max-executors must be positive, got 0"},
		{"max negative", func(c *Config) { c.MaxExecutors = -1 }, "max-executors must be positive, got -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
			if _, err := New(c); err == nil {
				t.Fatal("New accepted a config that Validate refuses")
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if c.StaleAfter != 30*time.Second || c.RemoveAfter != 2*time.Minute || c.MaxExecutors != 10000 {
		t.Fatalf("DefaultConfig() = %+v, want 30s, 2m, 10000", c)
	}
}
