// Package e2e drives the real lloom binary end to end: it builds it once
// per test run (with the race detector), starts validators and executors
// as separate processes, each in its own directory with JSON logs, and
// checks what a user sees: the output of `lloom client … --json`, exit
// codes, stderr and the nodes' logs. When a test fails, the logs of its
// nodes are printed.
//
// The tests are skipped with -short.
package e2e
