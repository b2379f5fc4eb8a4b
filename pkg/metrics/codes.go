package metrics

import (
	"slices"
	"strconv"
	"strings"

	"github.com/lloom/lloom/protocol/pb"
)

// Codes are the contract's error codes, 0 (none) first, then in
// increasing order. A code read from a remote peer may be any number, so
// only these get label values of their own; callers that count by code
// index arrays with CodeIndex.
var Codes = func() []pb.ErrorCode {
	out := make([]pb.ErrorCode, 0, len(pb.ErrorCode_name))
	for v := range pb.ErrorCode_name {
		out = append(out, pb.ErrorCode(v))
	}
	slices.Sort(out)
	return out
}()

// codes holds the label values of Codes, made once; index len(Codes) is
// Other.
var codes = func() (t struct {
	index         map[pb.ErrorCode]int
	label, result []string
}) {
	t.index = make(map[pb.ErrorCode]int, len(Codes))
	t.label = make([]string, len(Codes)+1)
	t.result = make([]string, len(Codes)+1)
	for i, c := range Codes {
		t.index[c] = i
		t.label[i] = strconv.Itoa(int(c))
		t.result[i] = strings.ToLower(strings.TrimPrefix(c.String(), "ERROR_CODE_"))
	}
	t.result[0] = "ok" // Codes[0] is ERROR_CODE_UNSPECIFIED: no error
	t.label[len(Codes)], t.result[len(Codes)] = Other, Other
	return t
}()

// CodeIndex is c's index in Codes, or len(Codes) for a code the contract
// does not define.
func CodeIndex(c pb.ErrorCode) int {
	if i, ok := codes.index[c]; ok {
		return i
	}
	return len(Codes)
}

// Code is the label value of a wire error code: its number ("1004"), "0"
// for none, Other for a number the contract does not define.
func Code(c pb.ErrorCode) string { return codes.label[CodeIndex(c)] }

// CodeAt is Code of the code at index i of Codes (len(Codes): Other).
func CodeAt(i int) string { return codes.label[i] }

// Result is the label value of an outcome that ended with wire code c:
// "ok" for none, else the code's name in lower case ("overloaded",
// "backend_failed", "rate_limited"), Other for a code the contract does
// not define.
func Result(c pb.ErrorCode) string { return codes.result[CodeIndex(c)] }
