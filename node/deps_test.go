package node

import (
	"errors"
	"go/build"
	"io/fs"
	"os"
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
	checked := 0
	for _, dir := range packageDirs(t, root) {
		p, err := build.ImportDir(filepath.Join(root, dir), 0)
		var noGo *build.NoGoError
		if errors.As(err, &noGo) {
			continue // tests only
		}
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		checked++
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
	if checked < 10 {
		t.Fatalf("only %d packages found under %s", checked, root)
	}
}

// packageDirs lists every directory of the module holding non-test Go
// files, relative to root, so that a new package is checked too. Nested
// modules (their own go.mod) and testdata are not ours to check.
func packageDirs(t *testing.T, root string) []string {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
			return filepath.SkipDir
		}
		if path != root {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
		}
		if goFiles, _ := filepath.Glob(filepath.Join(path, "*.go")); len(goFiles) > 0 {
			rel, _ := filepath.Rel(root, path)
			dirs = append(dirs, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}
