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
//
// The registry trusts its caller to have checked each message (limits,
// freshness, envelope signature) with package protocol before applying it;
// it enforces what needs its own state: sequence numbers, tombstones of
// removed executors and the executor limit. It keeps each envelope's bytes as
// received, so that clients can verify an executor's own signature, plus the
// few decoded fields that queries filter and order by.
//
// Status is derived at read time from the last time an executor was seen, so
// a query never reports a stale executor as healthy even if Sweep has not run
// yet; Sweep only reports transitions and removes executors past RemoveAfter.
package registry
