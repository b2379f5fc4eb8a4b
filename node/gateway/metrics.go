package gateway

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lloom/lloom/pkg/metrics"
)

// meters are the gateway's own metrics, on the registry of its client
// (Config.Client.Metrics), which holds the inference metrics of the
// requests it makes; nil when metrics are off.
type meters struct {
	requests *prometheus.CounterVec
	inFlight prometheus.Gauge
}

func newMeters(reg prometheus.Registerer) (*meters, error) {
	if reg == nil {
		return nil, nil
	}
	m := &meters{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace,
			Name:      "gateway_http_requests_total",
			Help:      "HTTP requests the gateway answered, by route (the pattern it matched) and status code.",
		}, []string{"route", "code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metrics.Namespace,
			Name:      "gateway_http_requests_in_flight",
			Help:      "HTTP requests being answered, streams included.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("gateway: metrics: %w", err)
		}
	}
	return m, nil
}

// instrument counts the requests h answers. The route label is the
// pattern the mux matched ("/" for its catch-all): the set of routes the
// gateway registers, never a path a client chose.
func (m *meters) instrument(h *http.ServeMux) http.Handler {
	if m == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.inFlight.Inc()
		defer m.inFlight.Dec()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r) // sets r.Pattern
		code := sw.status
		if code == 0 {
			code = http.StatusOK
		}
		m.requests.WithLabelValues(r.Pattern, strconv.Itoa(code)).Inc()
	})
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 { // not an informational 1xx
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushing
// server-sent events).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes on to a writer that flushes, for code that asserts
// http.Flusher rather than using a ResponseController.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
