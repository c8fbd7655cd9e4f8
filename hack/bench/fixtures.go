package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ecr-build-cache/ecr-build-cache/internal/teststack"
)

// A fixture is a build context under hack/bench/fixtures with a Dockerfile, an
// early deps.txt (another branch's dependency bump changes it) and a late
// src/late.txt (the partial scenario changes it).
type fixture struct {
	name string
	// what describes it in the report.
	what string
}

var fixtures = []fixture{
	{"app", "multi-stage: seconds of CPU and a 100 MiB layer early, sources late"},
	{"steps", "54 small RUN/COPY steps, config first, sources last"},
}

// contexts are the variants of a fixture's build context one run builds.
type contexts struct {
	base    string // as committed
	partial string // src/late.txt changed
	other   string // deps.txt bumped: another branch's content
}

// prepare copies the fixture into dir three times; the committed files are
// never changed.
func (f fixture) prepare(dir, runTag string) (contexts, error) {
	src := filepath.Join(teststack.RepoRoot(), "hack", "bench", "fixtures", f.name)
	c := contexts{
		base:    filepath.Join(dir, "base"),
		partial: filepath.Join(dir, "partial"),
		other:   filepath.Join(dir, "other"),
	}
	for _, d := range []string{c.base, c.partial, c.other} {
		if err := os.CopyFS(d, os.DirFS(src)); err != nil {
			return c, fmt.Errorf("copy fixture %s: %w", f.name, err)
		}
	}
	if err := appendLine(filepath.Join(c.partial, "src", "late.txt"), "changed in "+runTag); err != nil {
		return c, err
	}
	return c, appendLine(filepath.Join(c.other, "deps.txt"), "libnew 1.0.0 (dependency bump on another branch)")
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// generate writes a Dockerfile of n small RUN steps into a new directory under
// dir, for the scale study.
func generate(dir string, n int) (string, error) {
	ctx := filepath.Join(dir, fmt.Sprintf("gen-%d", n))
	if err := os.MkdirAll(ctx, 0o755); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("ARG BASE\nFROM ${BASE}\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "RUN echo %d > /step-%d\n", i, i)
	}
	return ctx, os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(b.String()), 0o644)
}
