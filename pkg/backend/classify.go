package backend

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

const (
	// maxErrorBody bounds how much of an error response is read.
	maxErrorBody = 64 << 10
	// maxMessage bounds an Error's Message, in bytes.
	maxMessage = 512
	// MaxRetryAfter caps a backend's Retry-After, so that a bogus date
	// cannot park a model for days.
	MaxRetryAfter = 24 * time.Hour
)

// classify maps a non-2xx HTTP status to a Kind and says whether the model
// should be marked unavailable. 401 and 403 say the backend is up but our
// key is wrong; other 4xx say it is up and refused this request: neither
// is the model's fault, so neither marks it unavailable.
func classify(status int) (Kind, bool) {
	switch {
	case status == http.StatusTooManyRequests:
		return KindOverloaded, false
	case status == http.StatusNotFound:
		return KindNotFound, false
	case status == http.StatusBadRequest, status == http.StatusUnprocessableEntity:
		return KindInvalid, false
	case status >= 400 && status < 500:
		return KindFailed, false
	}
	return KindFailed, true // 5xx, and 1xx/3xx that a client does not expect
}

// statusError reads (a bounded part of) a non-2xx response and classifies it.
func statusError(resp *http.Response, now time.Time) *Error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	kind, unavailable := classify(resp.StatusCode)
	msg := fmt.Sprintf("backend: HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	if detail := bodyMessage(body, resp.Header.Get("Content-Type")); detail != "" {
		msg = fmt.Sprintf("backend: HTTP %d: %s", resp.StatusCode, detail)
	}
	e := &Error{Kind: kind, Status: resp.StatusCode, Unavailable: unavailable, Message: oneLine(msg)}
	if kind == KindOverloaded {
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	return e
}

// bodyMessage extracts the backend's own words from an error body: the
// message of OpenAI's {"error":{"message":...}} or Ollama's {"error":"..."},
// else the body itself when it is short plain text (not an HTML page).
func bodyMessage(body []byte, contentType string) string {
	if msg, ok := errorField(body); ok {
		return msg
	}
	media, _, _ := mime.ParseMediaType(contentType)
	text := strings.TrimSpace(string(body))
	if media == "text/html" || strings.HasPrefix(text, "<") || !utf8.ValidString(text) {
		return ""
	}
	return text
}

// errorField decodes {"error": ...} and returns its message; ok is false
// when body is not such an object.
func errorField(body []byte) (string, bool) {
	var env struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &env) != nil || len(env.Error) == 0 || string(env.Error) == "null" {
		return "", false
	}
	return errorText(env.Error), true
}

// errorText turns the value of an "error" member into a message: a string
// as is, an object's "message" (with its "type" when it has no message).
func errorText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var obj struct {
		Message string `json:"message"`
		Type    string `json:"type"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		if obj.Message != "" {
			return obj.Message
		}
		return obj.Type
	}
	return string(raw)
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP date
// (RFC 9110 §10.2.3). Anything unreadable or in the past is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if err != nil || secs > uint64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}

// oneLine makes s a single line of printable text no longer than
// maxMessage bytes, cut at a rune boundary.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
