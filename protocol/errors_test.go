package protocol_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

var sentinels = []*protocol.Error{
	protocol.ErrInvalidSignature,
	protocol.ErrExpired,
	protocol.ErrReplay,
	protocol.ErrRegistryFull,
	protocol.ErrExecutorNotFound,
	protocol.ErrModelNotFound,
	protocol.ErrModelLimitExceeded,
	protocol.ErrUnsupportedVersion,
	protocol.ErrMalformed,
	protocol.ErrUnsupportedQuery,
	protocol.ErrWrongNetwork,
	protocol.ErrTimeout,
	protocol.ErrRateLimited,
	protocol.ErrInternal,
	protocol.ErrModelNotServed,
	protocol.ErrOverloaded,
	protocol.ErrBackendFailed,
	protocol.ErrInvalidRequest,
	protocol.ErrPriceTooHigh,
}

// The numbers are the contract: they must never change.
func TestSentinelCodes(t *testing.T) {
	want := []int32{1001, 1003, 1004, 2001, 2002, 2003, 2005, 3001, 3002, 3003, 3004, 4002, 4290, 5000, 6001, 6002, 6003, 6004, 6005}
	if len(sentinels) != len(want) {
		t.Fatalf("%d sentinels, want %d", len(sentinels), len(want))
	}
	for i, s := range sentinels {
		if int32(s.Code) != want[i] {
			t.Errorf("sentinel %q has code %d, want %d", s.Reason, s.Code, want[i])
		}
	}
	// Every non-zero ErrorCode of the schema has a sentinel.
	values := pb.ErrorCode(0).Descriptor().Values()
	if values.Len()-1 != len(sentinels) {
		t.Errorf("the schema has %d error codes besides UNSPECIFIED, the package %d sentinels", values.Len()-1, len(sentinels))
	}
}

func TestErrorsIsMatchesByCode(t *testing.T) {
	for i, a := range sentinels {
		detailed := protocol.Errorf(a.Code, "detail %d", i)
		wrapped := fmt.Errorf("validator: %w", detailed)
		for j, b := range sentinels {
			if got := errors.Is(detailed, b); got != (i == j) {
				t.Errorf("errors.Is(Errorf(%d), sentinel %d) = %v, want %v", a.Code, b.Code, got, i == j)
			}
			if got := errors.Is(wrapped, b); got != (i == j) {
				t.Errorf("errors.Is(wrapped Errorf(%d), sentinel %d) = %v, want %v", a.Code, b.Code, got, i == j)
			}
		}
		if !strings.Contains(detailed.Error(), fmt.Sprintf("detail %d", i)) || !strings.Contains(detailed.Error(), fmt.Sprint(int32(a.Code))) {
			t.Errorf("error text %q should hold the detail and the code %d", detailed.Error(), a.Code)
		}
	}
	if errors.Is(errors.New("malformed message"), protocol.ErrMalformed) {
		t.Errorf("a plain error with the same text matches ErrMalformed")
	}
}

type fakeNetErr struct{ timeout bool }

func (e fakeNetErr) Error() string { return "net" }
func (e fakeNetErr) Timeout() bool { return e.timeout }

func TestCodeOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want pb.ErrorCode
	}{
		{"nil", nil, pb.ErrorCode_ERROR_CODE_UNSPECIFIED},
		{"sentinel", protocol.ErrRateLimited, pb.ErrorCode_ERROR_CODE_RATE_LIMITED},
		{"*Error", protocol.Errorf(pb.ErrorCode_ERROR_CODE_MODEL_NOT_FOUND, "no %s", "x"), pb.ErrorCode_ERROR_CODE_MODEL_NOT_FOUND},
		{"wrapped *Error", fmt.Errorf("x: %w", protocol.Errorf(pb.ErrorCode_ERROR_CODE_REPLAY, "old")), pb.ErrorCode_ERROR_CODE_REPLAY},
		{"twice wrapped *Error", fmt.Errorf("a: %w", fmt.Errorf("b: %w", protocol.ErrRegistryFull)), pb.ErrorCode_ERROR_CODE_REGISTRY_FULL},
		{"context deadline", context.DeadlineExceeded, pb.ErrorCode_ERROR_CODE_TIMEOUT},
		{"os deadline, wrapped", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), pb.ErrorCode_ERROR_CODE_TIMEOUT},
		{"net timeout", fakeNetErr{timeout: true}, pb.ErrorCode_ERROR_CODE_TIMEOUT},
		{"net error, not a timeout", fakeNetErr{timeout: false}, pb.ErrorCode_ERROR_CODE_INTERNAL},
		{"context canceled", context.Canceled, pb.ErrorCode_ERROR_CODE_INTERNAL},
		{"plain error", errors.New("disk full"), pb.ErrorCode_ERROR_CODE_INTERNAL},
	} {
		if got := protocol.CodeOf(tc.err); got != tc.want {
			t.Errorf("CodeOf(%s: %v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// A validator answers with CodeOf(err) and err's text; the client maps them
// back with ErrorFromResponse and can test for the same sentinel.
func TestErrorFromResponseRoundTrip(t *testing.T) {
	for _, s := range sentinels {
		sent := fmt.Errorf("query: %w", protocol.Errorf(s.Code, "because %d", s.Code))
		got := protocol.ErrorFromResponse(protocol.CodeOf(sent), sent.Error())
		if !errors.Is(got, s) {
			t.Errorf("code %d: ErrorFromResponse gave %v, which does not match its sentinel", s.Code, got)
		}
		if protocol.CodeOf(got) != s.Code {
			t.Errorf("code %d: CodeOf(ErrorFromResponse) = %d", s.Code, protocol.CodeOf(got))
		}
		if !strings.Contains(got.Error(), fmt.Sprintf("because %d", s.Code)) {
			t.Errorf("code %d: the validator's message is lost: %q", s.Code, got.Error())
		}
	}
	if err := protocol.ErrorFromResponse(pb.ErrorCode_ERROR_CODE_UNSPECIFIED, "ignored"); err != nil {
		t.Errorf("a response without an error code gave error %v, want nil", err)
	}
	err := protocol.ErrorFromResponse(pb.ErrorCode_ERROR_CODE_RATE_LIMITED, "")
	if !errors.Is(err, protocol.ErrRateLimited) || !strings.Contains(err.Error(), "RATE_LIMITED") {
		t.Errorf("a 4290 response with no message gave %v, want an error naming the code", err)
	}
	err = protocol.ErrorFromResponse(9999, "from the future")
	if protocol.CodeOf(err) != 9999 || !strings.Contains(err.Error(), "9999") {
		t.Errorf("an unknown code 9999 gave %v (code %d), want it kept as it is", err, protocol.CodeOf(err))
	}
}

// WithoutCode drops the wire code from a detailed error, wrapped or not,
// and leaves other errors as they are.
func TestWithoutCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{protocol.Errorf(protocol.ErrMalformed.Code, "price %q is not a decimal number of wei", "x"), `price "x" is not a decimal number of wei`},
		{fmt.Errorf("models[0]: %w", protocol.Errorf(protocol.ErrMalformed.Code, "bad")), "models[0]: bad"},
		{errors.New("plain"), "plain"},
	} {
		if got := protocol.WithoutCode(tc.err); got != tc.want {
			t.Errorf("WithoutCode(%q) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
