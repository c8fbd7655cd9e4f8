// Command docgen writes docs/inputs.md and the README's inputs and outputs
// tables from action.yml. Run it from the repository root after changing
// action.yml: go run ./hack/docgen (internal/docs' tests fail until it is run).
package main

import (
	"fmt"
	"os"

	"github.com/ecr-build-cache/ecr-build-cache/internal/docs"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		os.Exit(1)
	}
}

func run() error {
	files, err := docs.Generate(os.ReadFile)
	if err != nil {
		return err
	}
	for name, content := range files {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
