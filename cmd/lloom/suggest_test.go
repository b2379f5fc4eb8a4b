package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/lloom/lloom/protocol/pb"
)

// Typos get the nearest command or flag; a flag of a mistyped command is
// not blamed for the typo.
func TestSuggestions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"exector"}, `unknown command "exector" for "lloom"; did you mean "executor"?`},
		{[]string{"client", "discver", "--validator", "X"}, `unknown command "discver" for "lloom client"; did you mean "discover"?`},
		{[]string{"executor", "--models", "m"}, "unknown flag: --models; did you mean --model?"},
		{[]string{"--model", "m"}, "unknown flag: --model; it belongs after a command, e.g. 'lloom executor --model'"},
		{[]string{"validator", "--bogus"}, "unknown flag: --bogus (see 'lloom validator --help')"},
	} {
		var out bytes.Buffer
		root := newRootCommand(&out, &out)
		root.SetArgs(tc.args)
		err := root.Execute()
		var u usageError
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &u) {
			t.Errorf("lloom %s: %v, want a usage error saying %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"model", "models", 1}, {"discver", "discover", 1}, {"cilent", "client", 2}, {"abc", "", 3}} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// What an executor did not announce shows as unknown; no price is free.
func TestUnknownValues(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{orUnknown(""), "-"},
		{orUnknown("vllm"), "vllm"},
		{contextText(0), "-"},
		{contextText(8192), "8192"},
		{priceText(nil), "free"},
		{priceText(&pb.Pricing{InputTokenPriceWei: "0", OutputTokenPriceWei: ""}), "free"},
		{priceText(&pb.Pricing{InputTokenPriceWei: "10", OutputTokenPriceWei: "20"}), "10/20"},
		{priceText(&pb.Pricing{OutputTokenPriceWei: "20", MinimumFeeWei: "5"}), "0/20 (min 5)"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
