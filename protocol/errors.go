package protocol

import (
	"errors"
	"fmt"
	"strings"

	"github.com/lloom/lloom/protocol/pb"
)

// Error is a failure with a stable numeric code from the contract. Two
// Errors match under errors.Is when their codes are equal, so a detailed
// error built with Errorf still matches its sentinel below, on both sides
// of the wire.
type Error struct {
	Code   pb.ErrorCode
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (code %d)", e.Reason, int32(e.Code))
}

// Is matches any *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels, one per contract error code.
var (
	ErrInvalidSignature   = &Error{pb.ErrorCode_ERROR_CODE_INVALID_SIGNATURE, "invalid signature"}
	ErrExpired            = &Error{pb.ErrorCode_ERROR_CODE_EXPIRED, "expired"}
	ErrReplay             = &Error{pb.ErrorCode_ERROR_CODE_REPLAY, "replay"}
	ErrRegistryFull       = &Error{pb.ErrorCode_ERROR_CODE_REGISTRY_FULL, "registry full"}
	ErrExecutorNotFound   = &Error{pb.ErrorCode_ERROR_CODE_EXECUTOR_NOT_FOUND, "executor not found"}
	ErrModelNotFound      = &Error{pb.ErrorCode_ERROR_CODE_MODEL_NOT_FOUND, "model not found"}
	ErrModelLimitExceeded = &Error{pb.ErrorCode_ERROR_CODE_MODEL_LIMIT_EXCEEDED, "model limit exceeded"}
	ErrUnsupportedVersion = &Error{pb.ErrorCode_ERROR_CODE_UNSUPPORTED_PROTOCOL_VERSION, "unsupported protocol version"}
	ErrMalformed          = &Error{pb.ErrorCode_ERROR_CODE_MALFORMED_MESSAGE, "malformed message"}
	ErrUnsupportedQuery   = &Error{pb.ErrorCode_ERROR_CODE_UNSUPPORTED_QUERY, "unsupported query"}
	ErrWrongNetwork       = &Error{pb.ErrorCode_ERROR_CODE_WRONG_NETWORK, "wrong network"}
	ErrTimeout            = &Error{pb.ErrorCode_ERROR_CODE_TIMEOUT, "timeout"}
	ErrRateLimited        = &Error{pb.ErrorCode_ERROR_CODE_RATE_LIMITED, "rate limited"}
	ErrInternal           = &Error{pb.ErrorCode_ERROR_CODE_INTERNAL, "internal error"}
)

// WithoutCode is err's text without the " (code N)" that an *Error ends
// with: for a mistake in a flag or a file, where a wire code means nothing
// to the person who made it.
func WithoutCode(err error) string {
	var e *Error
	if !errors.As(err, &e) {
		return err.Error()
	}
	return strings.Replace(err.Error(), fmt.Sprintf(" (code %d)", int32(e.Code)), "", 1)
}

// Errorf returns an *Error with the given code and a detailed reason.
func Errorf(code pb.ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// CodeOf returns the contract code of err: its own if it wraps an *Error,
// ErrorCode_ERROR_CODE_TIMEOUT for a deadline, else ERROR_CODE_INTERNAL.
func CodeOf(err error) pb.ErrorCode {
	if err == nil {
		return pb.ErrorCode_ERROR_CODE_UNSPECIFIED
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if isTimeout(err) {
		return pb.ErrorCode_ERROR_CODE_TIMEOUT
	}
	return pb.ErrorCode_ERROR_CODE_INTERNAL
}

// ErrorFromResponse maps a response's code and message back to an error
// that matches the sentinel of that code; nil for no error.
func ErrorFromResponse(code pb.ErrorCode, msg string) error {
	if code == pb.ErrorCode_ERROR_CODE_UNSPECIFIED {
		return nil
	}
	if msg == "" {
		msg = code.String()
	}
	return &Error{Code: code, Reason: msg}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
