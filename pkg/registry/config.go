package registry

import (
	"fmt"
	"time"
)

// Config sets the registry's health thresholds and its bounds.
type Config struct {
	// StaleAfter is how long an executor may go without a valid heartbeat
	// or announcement before it is reported stale. Default 30s (three
	// heartbeat intervals).
	StaleAfter time.Duration
	// RemoveAfter is how long an executor may go without a valid message
	// before it is removed. It is also the freshness window: a message
	// issued longer ago is refused, so the tombstone of a REMOVAL is kept
	// this long after the later of its arrival and its issue time. Default
	// 2m.
	RemoveAfter time.Duration
	// MaxExecutors bounds the executors held, verified or not. When it is
	// reached, a newly verified executor evicts the worst entry (see
	// Registry.Reached); an unverified newcomer is refused. Default 10,000.
	MaxExecutors int
	// MaxPerIP bounds the verified executors per observed address group:
	// one IPv4 address, one IPv6 /64, loopback included. An executor
	// verified over a connection from a full group stays unverified. 0 is
	// no limit. Default 16.
	MaxPerIP int
	// MaxTombstones bounds the tombstones kept for REMOVALs; the oldest
	// goes first. 0 is MaxExecutors.
	MaxTombstones int
	// MaxEntryBytes bounds what one executor's entry may hold: its
	// announcement envelope and addresses plus room for the heartbeat of
	// its models. 0 is DefaultMaxEntryBytes, 24 KiB.
	MaxEntryBytes int
	// History bounds the change log (changes.go): the changes kept for
	// readers of the feed, at most History of them taking at most
	// HistoryBytes. 0 is DefaultHistory and DefaultHistoryBytes.
	History      int
	HistoryBytes int
	// FirstVersion is the version of the first change; 0 is 1. A validator
	// sets the unix-nanosecond time of its start, so that versions keep
	// increasing across restarts and a reader's version from before one is
	// never taken for a current one.
	FirstVersion uint64
}

// Defaults of Config.
const (
	DefaultStaleAfter    = 30 * time.Second
	DefaultRemoveAfter   = 2 * time.Minute
	DefaultMaxExecutors  = 10000
	DefaultMaxPerIP      = 16
	DefaultMaxEntryBytes = 24 << 10
)

// DefaultConfig returns the contract's defaults.
func DefaultConfig() Config {
	return Config{
		StaleAfter:   DefaultStaleAfter,
		RemoveAfter:  DefaultRemoveAfter,
		MaxExecutors: DefaultMaxExecutors,
		MaxPerIP:     DefaultMaxPerIP,
	}
}

// minEntryBytes is the smallest budget that still fits an announcement of
// one model and its heartbeat.
const minEntryBytes = 4 << 10

// Validate reports the first setting that cannot work, naming it.
func (c Config) Validate() error {
	switch {
	case c.StaleAfter <= 0:
		return fmt.Errorf("registry: stale-after must be positive, got %s", c.StaleAfter)
	case c.RemoveAfter <= c.StaleAfter:
		return fmt.Errorf("registry: remove-after (%s) must be longer than stale-after (%s)", c.RemoveAfter, c.StaleAfter)
	case c.MaxExecutors <= 0:
		return fmt.Errorf("registry: max-executors must be positive, got %d", c.MaxExecutors)
	case c.MaxPerIP < 0:
		return fmt.Errorf("registry: max-executors-per-ip must be 0 (no limit) or positive, got %d", c.MaxPerIP)
	case c.MaxTombstones < 0:
		return fmt.Errorf("registry: max-tombstones must be 0 (max-executors) or positive, got %d", c.MaxTombstones)
	case c.History < 0 || c.HistoryBytes < 0:
		return fmt.Errorf("registry: history %d and history bytes %d must be 0 (the default) or positive", c.History, c.HistoryBytes)
	case c.MaxEntryBytes != 0 && c.MaxEntryBytes < minEntryBytes:
		return fmt.Errorf("registry: max-entry-bytes must be 0 (the default) or at least %d, got %d", minEntryBytes, c.MaxEntryBytes)
	}
	return nil
}

// withDefaults fills the settings whose zero value means a default.
func (c Config) withDefaults() Config {
	if c.MaxTombstones == 0 {
		c.MaxTombstones = c.MaxExecutors
	}
	if c.MaxEntryBytes == 0 {
		c.MaxEntryBytes = DefaultMaxEntryBytes
	}
	if c.History == 0 {
		c.History = DefaultHistory
	}
	if c.HistoryBytes == 0 {
		c.HistoryBytes = DefaultHistoryBytes
	}
	if c.FirstVersion == 0 {
		c.FirstVersion = 1
	}
	return c
}
