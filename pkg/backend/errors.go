package backend

import (
	"errors"
	"time"
)

// ErrBaseURL reports a base URL that New cannot use.
var ErrBaseURL = errors.New("backend: invalid base URL")

// Each Kind's sentinel: errors.Is(err, ErrOverloaded) holds for any *Error
// of KindOverloaded, however deeply wrapped.
var (
	ErrFailed     = errors.New("backend: failed")
	ErrOverloaded = errors.New("backend: overloaded")
	ErrNotFound   = errors.New("backend: model not found")
	ErrInvalid    = errors.New("backend: invalid request")
)

// Kind classifies a backend failure the way the inference protocol reports
// it. The zero Kind is KindFailed, the safe default.
type Kind int

const (
	// KindFailed: the backend is unreachable, broken or refused us
	// (wire code 6003).
	KindFailed Kind = iota
	// KindOverloaded: the backend answered 429 (wire code 6002).
	KindOverloaded
	// KindNotFound: the backend does not know the model (wire code 6001).
	KindNotFound
	// KindInvalid: the backend refused the request as invalid, 400 or 422
	// (wire code 6004).
	KindInvalid
)

func (k Kind) String() string {
	switch k {
	case KindFailed:
		return "failed"
	case KindOverloaded:
		return "overloaded"
	case KindNotFound:
		return "not found"
	case KindInvalid:
		return "invalid"
	}
	return "unknown"
}

func (k Kind) sentinel() error {
	switch k {
	case KindOverloaded:
		return ErrOverloaded
	case KindNotFound:
		return ErrNotFound
	case KindInvalid:
		return ErrInvalid
	}
	return ErrFailed
}

// Error is a classified backend failure.
type Error struct {
	Kind Kind
	// Status is the HTTP status, 0 when the request failed in transport
	// or the stream broke after a 200.
	Status int
	// RetryAfter is the backend's Retry-After on a 429 (seconds or an HTTP
	// date, capped at MaxRetryAfter); 0 when it sent none.
	RetryAfter time.Duration
	// Unavailable is true when the model should be marked unavailable
	// until the backend answers again: every KindFailed except 401, 403 and
	// other 4xx statuses, which say the backend is up but refuses us.
	Unavailable bool
	// Message is one line for logs and the wire error frame, with the
	// backend's own error message when it sent one.
	Message string

	err error // the transport error, if any
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "backend: " + e.Kind.String()
	}
	return e.Message
}

// Is reports whether target is the sentinel of e's Kind.
func (e *Error) Is(target error) bool { return target == e.Kind.sentinel() }

// Unwrap returns the transport error behind a failure, if any.
func (e *Error) Unwrap() error { return e.err }

// failed builds a KindFailed error that marks the model unavailable.
func failed(msg string, cause error) *Error {
	return &Error{Kind: KindFailed, Unavailable: true, Message: oneLine("backend: " + msg), err: cause}
}

// callbackError carries the error of the caller's delta callback through
// the stream reader, so that Stream returns it rather than classifying it.
type callbackError struct{ err error }

func (e *callbackError) Error() string { return "backend: stopped by delta callback: " + e.err.Error() }
func (e *callbackError) Unwrap() error { return e.err }
