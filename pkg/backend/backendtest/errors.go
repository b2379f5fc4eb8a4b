package backendtest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// refuse answers a request that the settings refuse before looking at it:
// a failing or locked fake. It reports whether it answered.
func (f *Fake) refuse(w http.ResponseWriter, r *http.Request, cfg settings) bool {
	switch {
	case cfg.failStatus != 0:
		if cfg.failRetry != "" {
			w.Header().Set("Retry-After", cfg.failRetry)
		}
		if cfg.failBody == "" {
			writeError(w, cfg.failStatus, http.StatusText(cfg.failStatus), errorType(cfg.failStatus), "")
			return true
		}
		ctype := "text/plain; charset=utf-8"
		if strings.HasPrefix(strings.TrimSpace(cfg.failBody), "{") {
			ctype = "application/json"
		}
		w.Header().Set("Content-Type", ctype)
		w.WriteHeader(cfg.failStatus)
		_, _ = io.WriteString(w, cfg.failBody)
		return true
	case cfg.apiKey != "" && r.Header.Get("Authorization") != "Bearer "+cfg.apiKey:
		writeError(w, http.StatusUnauthorized, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
		return true
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers in OpenAI's error shape.
func writeError(w http.ResponseWriter, status int, msg, typ, code string) {
	type body struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
	b := body{Message: msg, Type: typ}
	if code != "" {
		b.Code = &code
	}
	writeJSON(w, status, struct {
		Error body `json:"error"`
	}{b})
}

func errorType(status int) string {
	if status >= 500 {
		return "server_error"
	}
	return "invalid_request_error"
}
