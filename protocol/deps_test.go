package protocol_test

import (
	"os/exec"
	"strings"
	"testing"
)

// Package protocol depends on nothing else of lloom, so that other
// implementations' harnesses and every role can use it alone.
func TestProtocolImportsNothingOfOurs(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to list the package's imports: %v", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/lloom/lloom/") &&
			pkg != "github.com/lloom/lloom/protocol" && pkg != "github.com/lloom/lloom/protocol/pb" {
			t.Errorf("package protocol imports %s; it must depend on nothing else of lloom", pkg)
		}
	}
}
