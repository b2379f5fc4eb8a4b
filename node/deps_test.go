package node

import (
	"go/build"
	"path/filepath"
	"strings"
	"testing"
)

// Imports flow one way: cmd → node → {pkg, protocol}, pkg → protocol, and
// protocol depends on nothing of ours.
func TestImportDirection(t *testing.T) {
	const mod = "github.com/lloom/lloom/"
	rules := map[string][]string{ // package prefix → prefixes it must not import
		"protocol": {"pkg/", "node", "cmd/"},
		"pkg/":     {"node", "cmd/"},
		"node":     {"cmd/"},
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"protocol", "pkg/registry", "pkg/announcer", "pkg/config", "node", "node/validator", "node/executor", "node/client"} {
		p, err := build.ImportDir(filepath.Join(root, dir), 0)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for prefix, banned := range rules {
			if !strings.HasPrefix(dir, prefix) {
				continue
			}
			for _, imp := range p.Imports {
				for _, b := range banned {
					if strings.HasPrefix(imp, mod+b) {
						t.Errorf("%s imports %s; %s must not depend on %s", dir, imp, prefix, b)
					}
				}
			}
		}
	}
}
