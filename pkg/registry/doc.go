// Package registry owns a validator's view of the network: which executor
// serves which model, with what capabilities, price and load, and whether it
// is healthy, overloaded or stale. It answers the queries of the
// /lloom/query/1.0.0 protocol from that view.
//
// The Registry is a plain data structure: no networking, no goroutines and no
// clock of its own. Every method whose answer depends on time takes now, so
// staleness and expiry are tested with explicit times, and the caller (the
// validator role) decides when to Sweep. One sync.RWMutex guards the state:
// messages and sweeps take it for writing, lookups and queries for reading.
// Queries hold it briefly (index.go, list.go): each model's index keeps a
// compact copy of what filters, counts and the load order read (its slots),
// so a scan reads memory in order; a list takes the lock for one batch of
// models at a time; entries are copied under the lock and built after it.
//
// The registry takes only messages whose signature holds: its Apply
// methods accept protocol.VerifiedAnnouncement and VerifiedHeartbeat, which
// package protocol makes only after checking the envelope. Freshness is the
// caller's rule; the registry enforces what needs its own state: sequence
// numbers, tombstones of removed executors, the admission rules of DESIGN
// §10 and the bounds on what remote peers can make it hold. It keeps each
// envelope's bytes as received, so that clients can verify an executor's own
// signature, plus the few decoded fields that queries filter and order by.
//
// Admission (admission.go): an executor that announces itself is held
// unverified — counted, hidden from queries unless asked for — until the
// caller reports that it reached the executor over the pull protocol
// (Reached); checks that fail back off (CheckFailed, DueChecks). At most
// MaxPerIP verified executors share an observed address group. When the
// registry is full, only a verified newcomer gets in, by evicting the worst
// entry: unverified, then stale, then the youngest of the most crowded
// address. Bounds: MaxExecutors entries of at most MaxEntryBytes each, and
// MaxTombstones tombstones, left only by verified executors, each kept for
// the freshness window (tombstone.go).
//
// The change log (changes.go) numbers every change to an executor as it is
// made, in a bounded history that readers of the validator's change feed
// share; Snapshot and its version continue exactly into it.
//
// Status is derived at read time from the last time an executor was seen, so
// a query never reports a stale executor as healthy even if Sweep has not run
// yet; Sweep only reports transitions and removes executors past RemoveAfter.
package registry
