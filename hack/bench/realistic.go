package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// The realistic fixture's generated context: hack/bench/fixtures/realistic
// holds only its Dockerfile.
const (
	realisticSeed     = 13
	realisticPackages = 1200 // deps.lock lines: one ~100 KB module each
	realisticModules  = 80   // src/mNN directories
	realisticFiles    = 100  // files per module: 8,000 source files
	// The files the partial and the new-branch scenarios change: one each,
	// different, so neither build can be served by the other's cache.
	partialFile = "src/m41/f017.js"
	branchFile  = "src/m07/f063.js"
)

// generateRealistic writes the realistic fixture's contexts into dir: the
// committed Dockerfile with a generated deps.lock and src/ (the same bytes on
// every run), committed, then checkouts of that commit with one source file
// changed and committed.
func generateRealistic(dir, runTag string) (contexts, error) {
	c := contexts{
		base:    filepath.Join(dir, "base"),
		partial: filepath.Join(dir, "partial"),
		branch:  filepath.Join(dir, "branch"),
	}
	df := filepath.Join(teststack.RepoRoot(), "hack", "bench", "fixtures", "realistic", "Dockerfile")
	if err := writeRealistic(c.base, df); err != nil {
		return c, fmt.Errorf("generate the realistic fixture: %w", err)
	}
	if err := commitContext(c.base, "fixture ("+runTag+")"); err != nil {
		return c, err
	}
	for _, d := range []struct{ dir, file string }{{c.partial, partialFile}, {c.branch, branchFile}} {
		if err := cloneContext(c.base, d.dir); err != nil {
			return c, err
		}
		if err := appendLine(filepath.Join(d.dir, d.file), "// changed in "+runTag); err != nil {
			return c, err
		}
		if err := commitContext(d.dir, "change "+d.file+" ("+runTag+")"); err != nil {
			return c, err
		}
	}
	return c, nil
}

func writeRealistic(dir, dockerfile string) error {
	rng := rand.New(rand.NewPCG(realisticSeed, realisticSeed)) //nolint:gosec // G404: seeded, so the fixture is the same bytes on every run
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	df, err := os.ReadFile(dockerfile)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), df, 0o644); err != nil {
		return err
	}
	var lock strings.Builder
	for i := 1; i <= realisticPackages; i++ {
		fmt.Fprintf(&lock, "g%02d %s-%04d %d.%d.%d\n", rng.IntN(60), word(rng), i, rng.IntN(5), rng.IntN(30), rng.IntN(20))
	}
	if err := os.WriteFile(filepath.Join(dir, "deps.lock"), []byte(lock.String()), 0o644); err != nil {
		return err
	}
	for m := range realisticModules {
		mod := filepath.Join(dir, "src", fmt.Sprintf("m%02d", m))
		if err := os.MkdirAll(mod, 0o755); err != nil {
			return err
		}
		for f := range realisticFiles {
			if err := os.WriteFile(filepath.Join(mod, fmt.Sprintf("f%03d.js", f)), sourceFile(rng, m, f), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

var words = strings.Fields("account order item price cart user session token cache queue event handler " +
	"request response client server config value index entry record batch stream buffer parse render " +
	"format encode decode validate merge split filter reduce map sort group count total limit offset")

func word(rng *rand.Rand) string { return words[rng.IntN(len(words))] }

// sourceFile is 0.5-4 KB of JavaScript-like text: imports, then functions.
func sourceFile(rng *rand.Rand, m, f int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "// module m%02d, file f%03d\n", m, f)
	for range 1 + rng.IntN(4) {
		fmt.Fprintf(&b, "import { %s } from '../m%02d/f%03d.js';\n", word(rng), rng.IntN(realisticModules), rng.IntN(realisticFiles))
	}
	size := 500 + rng.IntN(3500)
	for b.Len() < size {
		name := word(rng) + strings.ToUpper(word(rng)[:1]) + word(rng)[1:]
		fmt.Fprintf(&b, "\nexport function %s%d(%s, %s) {\n", name, rng.IntN(1000), word(rng), word(rng))
		for range 1 + rng.IntN(5) {
			fmt.Fprintf(&b, "  const %s = %s.%s(%d);\n", word(rng), word(rng), word(rng), rng.IntN(10000))
		}
		fmt.Fprintf(&b, "  return %s;\n}\n", word(rng))
	}
	return []byte(b.String())
}

// realisticOutsideGit writes the realistic fixture's contexts as plain
// directories, as a step that generates a build context leaves them: the same
// files as generateRealistic's checkouts (with the .dockerignore they hold),
// no git work tree.
func realisticOutsideGit(dir, runTag string) (contexts, error) {
	c := contexts{base: filepath.Join(dir, "base"), partial: filepath.Join(dir, "partial"), branch: filepath.Join(dir, "branch")}
	df := filepath.Join(teststack.RepoRoot(), "hack", "bench", "fixtures", "realistic", "Dockerfile")
	if err := writeRealistic(c.base, df); err != nil {
		return c, fmt.Errorf("generate the realistic fixture: %w", err)
	}
	if err := ignoreGit(c.base); err != nil {
		return c, err
	}
	for _, d := range []struct{ dir, file string }{{c.partial, partialFile}, {c.branch, branchFile}} {
		if err := os.CopyFS(d.dir, os.DirFS(c.base)); err != nil {
			return c, err
		}
		if err := appendLine(filepath.Join(d.dir, d.file), "// changed in "+runTag); err != nil {
			return c, err
		}
	}
	return c, nil
}

// generatedFile is the realistic-generated fixture's file an earlier step
// makes (a bundle): git ignores it, the build context holds it.
const generatedFile = "src/gen/bundle.js"

// realisticGenerated writes the realistic fixture's checkout with a
// .gitignore listing src/gen/ and generatedFile in it, then a checkout of the
// same commit whose generatedFile differs: the same HEAD, another context.
func realisticGenerated(dir, runTag string) (contexts, error) {
	c := contexts{base: filepath.Join(dir, "base"), partial: filepath.Join(dir, "partial")}
	df := filepath.Join(teststack.RepoRoot(), "hack", "bench", "fixtures", "realistic", "Dockerfile")
	if err := writeRealistic(c.base, df); err != nil {
		return c, fmt.Errorf("generate the realistic fixture: %w", err)
	}
	if err := os.WriteFile(filepath.Join(c.base, ".gitignore"), []byte("/src/gen/\n"), 0o644); err != nil {
		return c, err
	}
	if err := commitContext(c.base, "fixture ("+runTag+")"); err != nil {
		return c, err
	}
	if err := cloneContext(c.base, c.partial); err != nil {
		return c, err
	}
	for _, d := range []struct{ dir, content string }{{c.base, "generated"}, {c.partial, "generated again, " + runTag}} {
		p := filepath.Join(d.dir, generatedFile)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return c, err
		}
		if err := os.WriteFile(p, []byte("// "+d.content+"\nexport const built = 1;\n"), 0o644); err != nil {
			return c, err
		}
	}
	return c, nil
}
