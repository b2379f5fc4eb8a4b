package main

import (
	"errors"
	"net"
	"net/netip"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/lloom/lloom/pkg/metrics"
)

// metricsFlags is --metrics-listen, which every long-running command has
// (env LLOOM_METRICS_LISTEN, bound in root.go).
type metricsFlags struct{ listen string }

func (m *metricsFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&m.listen, "metrics-listen", "", "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9400 (env LLOOM_METRICS_LISTEN; off by default; read-only: keep it on loopback or behind a firewall)")
}

// start serves the metrics at --metrics-listen, if given, and returns the
// registry the node is to register its metrics with (nil: metrics off)
// and the function that stops the server.
func (m *metricsFlags) start(a *app, role string) (prometheus.Registerer, func(), error) {
	if m.listen == "" {
		return nil, func() {}, nil
	}
	host, _, err := net.SplitHostPort(m.listen)
	if err != nil {
		return nil, nil, usagef("--metrics-listen %q: want HOST:PORT, e.g. 127.0.0.1:9400", m.listen)
	}
	reg := metrics.NewRegistry(role, version)
	srv, err := metrics.Listen(m.listen, reg, a.log)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, nil, usagef("--metrics-listen %s: the port is in use (another node's metrics?)", m.listen)
	case err != nil:
		return nil, nil, usagef("--metrics-listen: %v", err)
	}
	if ip, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !ip.IsLoopback()) {
		a.log.Warn().Str("listen", srv.Addr()).Msg("Metrics served beyond loopback: whoever reaches this address sees the node's peers count, load and traffic; restrict it with a firewall")
	}
	a.log.Info().Str("listen", srv.Addr()).Msg("Metrics listening: Prometheus text format at http://" + srv.Addr() + "/metrics")
	return reg, func() { _ = srv.Close() }, nil
}
