package registry

import (
	"fmt"
	"time"
)

// Config sets the registry's health thresholds and size limit.
type Config struct {
	// StaleAfter is how long an executor may go without a valid heartbeat
	// or announcement before it is reported stale. Default 30s (three
	// heartbeat intervals).
	StaleAfter time.Duration
	// RemoveAfter is how long an executor may go without a valid message
	// before it is removed. It is also how long the tombstone of a REMOVAL
	// is kept. Default 2m.
	RemoveAfter time.Duration
	// MaxExecutors bounds the number of executors held, and separately the
	// number of tombstones. Default 10,000.
	MaxExecutors int
}

// Defaults of Config.
const (
	DefaultStaleAfter   = 30 * time.Second
	DefaultRemoveAfter  = 2 * time.Minute
	DefaultMaxExecutors = 10000
)

// DefaultConfig returns the contract's defaults.
func DefaultConfig() Config {
	return Config{
		StaleAfter:   DefaultStaleAfter,
		RemoveAfter:  DefaultRemoveAfter,
		MaxExecutors: DefaultMaxExecutors,
	}
}

// Validate reports the first setting that cannot work, naming it.
func (c Config) Validate() error {
	switch {
	case c.StaleAfter <= 0:
		return fmt.Errorf("registry: stale-after must be positive, got %s", c.StaleAfter)
	case c.RemoveAfter <= c.StaleAfter:
		return fmt.Errorf("registry: remove-after (%s) must be longer than stale-after (%s)", c.RemoveAfter, c.StaleAfter)
	case c.MaxExecutors <= 0:
		return fmt.Errorf("registry: max-executors must be positive, got %d", c.MaxExecutors)
	}
	return nil
}
