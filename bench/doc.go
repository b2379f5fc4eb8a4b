// Package bench measures lloom near its limits: how many signed messages a
// validator accepts per second against the raw Ed25519 verification rate,
// how soon an announcement, a removal or a crash becomes visible to a
// client, what queries cost at 10,000 executors, what a validator holding
// them weighs, and how CPU and convergence grow from 100 to 10,000
// executors.
//
// The benchmarks are ordinary `go test -bench` programs. By default they
// run at small sizes, so that CI checks in seconds that they build and run;
// `-args -full` runs the sizes documented in docs/PERFORMANCE.md. Each one
// reports distributions (p50, p90, p99, max) and ratios as benchmark
// metrics, never a timed assertion.
//
// Executors are simulated by a load generator that signs real envelopes
// with real Ed25519 keys. Where the validator's CPU is measured, the
// generator runs in a child process (the test binary started again, see
// gen.go), so that the parent process's CPU time and profiles are the
// validator's alone.
package bench
