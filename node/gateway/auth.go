package gateway

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// auth requires the API key, when one is set, as a bearer token.
func (g *Gateway) auth(next http.HandlerFunc) http.HandlerFunc {
	if g.cfg.APIKey == "" {
		return next
	}
	want := []byte(g.cfg.APIKey)
	return func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) != 1 {
			msg := "missing API key: send Authorization: Bearer KEY"
			if ok {
				msg = "incorrect API key"
			}
			writeError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", msg)
			return
		}
		next(w, r)
	}
}

// limit bounds the requests in flight; past MaxConcurrent, 429.
func (g *Gateway) limit(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case g.slots <- struct{}{}:
			defer func() { <-g.slots }()
			next(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded",
				"the gateway has its maximum of requests in flight; try again shortly")
		}
	}
}
