package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lloom/lloom/node/client"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// apiError is OpenAI's error object.
type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	writeJSON(w, status, map[string]apiError{"error": {Message: msg, Type: typ, Code: code}})
}

// failure is how a request that produced no answer is reported.
type failure struct {
	status     int
	typ, code  string
	msg        string
	param      string
	retryAfter time.Duration
}

func (f failure) write(w http.ResponseWriter) {
	if f.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((f.retryAfter+time.Second-1)/time.Second), 10))
	}
	e := apiError{Message: f.msg, Type: f.typ, Code: f.code}
	if f.param != "" {
		e.Param = &f.param
	}
	writeJSON(w, f.status, map[string]apiError{"error": e})
}

// classify maps a request's failure before its first token to an HTTP
// answer (DESIGN §9).
func classify(model string, ans *client.Answer, err error) failure {
	var br *badRequest
	switch {
	case errors.As(err, &br):
		return failure{status: http.StatusBadRequest, typ: "invalid_request_error", code: "invalid_request", msg: br.msg, param: br.param}
	case errors.Is(err, errTooLarge):
		return failure{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error", code: "request_too_large", msg: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return failure{status: http.StatusGatewayTimeout, typ: "api_error", code: "timeout", msg: "no executor started answering in time" + attemptsText(ans)}
	case errors.Is(err, client.ErrNoValidators):
		return failure{status: http.StatusBadGateway, typ: "api_error", code: "validators_unreachable", msg: err.Error()}
	case errors.Is(err, client.ErrNoExecutor):
		if ans == nil || len(ans.Candidates) == 0 {
			return failure{status: http.StatusNotFound, typ: "invalid_request_error", code: "model_not_found",
				msg: fmt.Sprintf("The model `%s` does not exist or no executor serves it within the gateway's limits", model)}
		}
		return failure{status: http.StatusServiceUnavailable, typ: "api_error", code: "no_capacity", retryAfter: time.Second,
			msg: fmt.Sprintf("no executor of `%s` can take the request now: %s", model, skippedText(ans))}
	}
	switch client.CodeOf(err) {
	case lp.ErrInvalidRequest.Code, lp.ErrMalformed.Code:
		return failure{status: http.StatusBadRequest, typ: "invalid_request_error", code: "invalid_request", msg: err.Error()}
	case lp.ErrPriceTooHigh.Code:
		return failure{status: http.StatusBadRequest, typ: "invalid_request_error", code: "price_above_limit", msg: err.Error()}
	case lp.ErrRateLimited.Code:
		return failure{status: http.StatusTooManyRequests, typ: "rate_limit_error", code: "rate_limit_exceeded", msg: err.Error(), retryAfter: minRetry(ans)}
	}
	if allOverloaded(ans) {
		return failure{status: http.StatusServiceUnavailable, typ: "api_error", code: "no_capacity", retryAfter: max(minRetry(ans), time.Second),
			msg: "every executor tried is at capacity" + attemptsText(ans)}
	}
	if allTimedOut(ans) {
		return failure{status: http.StatusGatewayTimeout, typ: "api_error", code: "timeout", msg: "no executor started answering in time" + attemptsText(ans)}
	}
	return failure{status: http.StatusBadGateway, typ: "api_error", code: "executor_failed", msg: "every attempt failed" + attemptsText(ans)}
}

func allOverloaded(ans *client.Answer) bool {
	if ans == nil || len(ans.Attempts) == 0 {
		return false
	}
	for _, a := range ans.Attempts {
		if a.Code != pb.ErrorCode_ERROR_CODE_OVERLOADED {
			return false
		}
	}
	return true
}

func allTimedOut(ans *client.Answer) bool {
	if ans == nil || len(ans.Attempts) == 0 {
		return false
	}
	for _, a := range ans.Attempts {
		if a.Code != pb.ErrorCode_ERROR_CODE_TIMEOUT {
			return false
		}
	}
	return true
}

// minRetry is the smallest retry hint of the attempts.
func minRetry(ans *client.Answer) time.Duration {
	var d time.Duration
	if ans == nil {
		return 0
	}
	for _, a := range ans.Attempts {
		if a.RetryAfter > 0 && (d == 0 || a.RetryAfter < d) {
			d = a.RetryAfter
		}
	}
	return d
}

func attemptsText(ans *client.Answer) string {
	if ans == nil || len(ans.Attempts) == 0 {
		return ""
	}
	parts := make([]string, 0, len(ans.Attempts))
	for i, a := range ans.Attempts {
		// Most of the client's errors name the executor already.
		if a.Err != nil && strings.Contains(a.Err.Error(), a.Executor.String()) {
			parts = append(parts, fmt.Sprintf("attempt %d: %v", i+1, a.Err))
		} else {
			parts = append(parts, fmt.Sprintf("attempt %d, executor %s: %v", i+1, a.Executor, a.Err))
		}
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

func skippedText(ans *client.Answer) string {
	parts := make([]string, 0, len(ans.Candidates))
	for _, c := range ans.Candidates {
		parts = append(parts, fmt.Sprintf("%s %s", c.Executor.PeerID, c.Skipped))
	}
	return strings.Join(parts, ", ")
}
