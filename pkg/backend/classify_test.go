package backend

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		status      int
		kind        Kind
		unavailable bool
	}{
		{500, KindFailed, true},
		{502, KindFailed, true},
		{503, KindFailed, true},
		{401, KindFailed, false},
		{403, KindFailed, false},
		{405, KindFailed, false},
		{413, KindFailed, false},
		{404, KindNotFound, false},
		{400, KindInvalid, false},
		{422, KindInvalid, false},
		{429, KindOverloaded, false},
		{304, KindFailed, true},
	}
	for _, tt := range tests {
		kind, unavailable := classify(tt.status)
		if kind != tt.kind || unavailable != tt.unavailable {
			t.Errorf("classify(%d) = %v, %v; want %v, %v", tt.status, kind, unavailable, tt.kind, tt.unavailable)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{"99999999999999999999", MaxRetryAfter},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(30 * 24 * time.Hour).Format(http.TimeFormat), MaxRetryAfter},
		{"Sun, 01 Mar 2026 12:00:30 GMT", 30 * time.Second},
		{"Sunday, 01-Mar-26 12:00:30 GMT", 30 * time.Second}, // RFC 850, still allowed
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestBodyMessage(t *testing.T) {
	tests := []struct {
		name, body, ctype, want string
	}{
		{"OpenAI shape", `{"error":{"message":"model \"x\" not found","type":"invalid_request_error","code":"model_not_found"}}`, "application/json", `model "x" not found`},
		{"Ollama shape", `{"error":"model 'llama9' not found, try pulling it first"}`, "application/json", "model 'llama9' not found, try pulling it first"},
		{"error object without message", `{"error":{"type":"server_error"}}`, "application/json", "server_error"},
		{"plain text", "upstream overloaded\n", "text/plain", "upstream overloaded"},
		{"HTML page", "<html><body>502 Bad Gateway</body></html>", "text/html; charset=utf-8", ""},
		{"HTML without a content type", "<!DOCTYPE html><p>oops", "", ""},
		{"JSON without error", `{"detail":"nope"}`, "application/json", `{"detail":"nope"}`},
		{"empty", "", "", ""},
	}
	for _, tt := range tests {
		if got := bodyMessage([]byte(tt.body), tt.ctype); got != tt.want {
			t.Errorf("%s: bodyMessage = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestOneLine(t *testing.T) {
	long := strings.Repeat("é", maxMessage)
	tests := []struct {
		in, want string
	}{
		{"a\nb\r\nc\td", "a b c d"},
		{"  spaced   out  ", "spaced out"},
		{"bad \xff byte", "bad \uFFFD byte"},
		{"line\u2028sep", "line sep"},
	}
	for _, tt := range tests {
		if got := oneLine(tt.in); got != tt.want {
			t.Errorf("oneLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	got := oneLine(long)
	if len(got) > maxMessage || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, "éé") {
		t.Errorf("oneLine(long): %d bytes, want at most %d ending in an ellipsis", len(got), maxMessage)
	}
	if !strings.HasPrefix(got, strings.Repeat("é", (maxMessage-len("…"))/2)) {
		t.Errorf("oneLine(long) cut inside a rune: %q", got[len(got)-10:])
	}
}
