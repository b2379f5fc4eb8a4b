package metrics

import (
	"testing"

	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// A code a remote peer sends may be any number; only the contract's own
// get a label value of their own.
func TestCodeLabels(t *testing.T) {
	for _, tt := range []struct {
		code          pb.ErrorCode
		label, result string
	}{
		{0, "0", "ok"},
		{lp.ErrReplay.Code, "1004", "replay"},
		{lp.ErrOverloaded.Code, "6002", "overloaded"},
		{lp.ErrBackendFailed.Code, "6003", "backend_failed"},
		{lp.ErrRateLimited.Code, "4290", "rate_limited"},
		{pb.ErrorCode(77777), Other, Other},
		{pb.ErrorCode(-1), Other, Other},
	} {
		if got := Code(tt.code); got != tt.label {
			t.Errorf("Code(%d) = %q, want %q", tt.code, got, tt.label)
		}
		if got := Result(tt.code); got != tt.result {
			t.Errorf("Result(%d) = %q, want %q", tt.code, got, tt.result)
		}
	}
	if n := len(Codes); n != len(pb.ErrorCode_name) || Codes[0] != 0 {
		t.Errorf("Codes = %v: want every code of the contract, none first", Codes)
	}
}
