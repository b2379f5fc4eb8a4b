// Command gguf-gen writes the tiny deterministic test model of package
// testmodel, and optionally the matching Ollama /api/create request body.
//
//	go run ./tools/testmodel/gguf-gen -seed 1 -out model.gguf
//	go run ./tools/testmodel/gguf-gen -out model.gguf -create-request create.json -name lloom-test:tiny
//
// It prints the file's digest as "sha256:<hex>" on standard output.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"

	"github.com/lloom/lloom/tools/testmodel"
)

func main() {
	seed := flag.Int64("seed", testmodel.DefaultSeed, "weight seed; the same seed gives a byte-identical file")
	out := flag.String("out", "model.gguf", "output GGUF path")
	createOut := flag.String("create-request", "", "also write the Ollama /api/create JSON body to this path")
	name := flag.String("name", testmodel.DefaultModelName, "model name used in the -create-request body")
	flag.Parse()

	if err := run(*seed, *out, *createOut, *name); err != nil {
		fmt.Fprintln(os.Stderr, "gguf-gen:", err)
		os.Exit(1)
	}
}

func run(seed int64, out, createOut, name string) error {
	var buf bytes.Buffer
	if err := testmodel.Generate(&buf, seed); err != nil {
		return err
	}
	sum := sha256.Sum256(buf.Bytes())
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	if createOut != "" {
		body, err := testmodel.CreateRequest(name, digest)
		if err != nil {
			return err
		}
		if err := os.WriteFile(createOut, append(body, '\n'), 0o644); err != nil {
			return err
		}
	}
	fmt.Println(digest)
	return nil
}
