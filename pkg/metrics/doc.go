// Package metrics owns what every lloom role shares for Prometheus: the
// per-node registry (with the Go runtime's and the process's collectors),
// the read-only HTTP server of --metrics-listen, the histogram buckets, and
// the label values that keep series bounded — wire error codes as a fixed
// set, and model ids capped per node and folded into "other" beyond the cap.
//
// Each component defines its own metrics in its own package, registered
// with the prometheus.Registerer its Config carries (nil: metrics off);
// nothing here registers with a global registry.
package metrics
