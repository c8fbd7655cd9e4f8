// Command demo is `make demo`: it starts the local stack (registry + buildkitd),
// builds the action binary, and runs it the way a runner does (inputs in INPUT_*
// variables, outputs read back from GITHUB_OUTPUT) on a sample app three times:
// cold, again after pruning the builder (a fresh runner), and as the first build
// of a new branch. It prints the time and cached steps of each run.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := realMain(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type result struct {
	name           string
	took           time.Duration
	cached, total  string
	cacheRef, from string
}

func realMain(ctx context.Context) error {
	root := teststack.RepoRoot()
	fmt.Println("Starting the local stack (first run installs packages and builds buildkitd: minutes)...")
	s, err := teststack.Start(ctx, teststack.Options{Log: os.Stderr})
	if err != nil {
		return err
	}
	defer s.Close()

	bin, err := teststack.BuildBinary(ctx, s.Dir)
	if err != nil {
		return err
	}

	var results []result
	for _, step := range []struct {
		name, branch string
		prune        bool
	}{
		{"cold (empty builder, no cache)", "main", true},
		{"warm (pruned builder, same branch)", "main", true},
		{"new branch (pruned builder)", "feature/demo", true},
	} {
		if step.prune {
			if err := s.Prune(ctx); err != nil {
				return err
			}
		}
		r, err := runAction(ctx, s, bin, filepath.Join(root, "hack", "demo", "app"), step.branch)
		if err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
		r.name = step.name
		results = append(results, r)
	}

	fmt.Printf("\n%-36s %10s %14s  %s\n", "run", "time", "cached/total", "cache exported to")
	for _, r := range results {
		fmt.Printf("%-36s %9.2fs %14s  %s\n", r.name, r.took.Seconds(), r.cached+"/"+r.total, r.cacheRef)
	}
	if w := results[1]; w.cached != w.total {
		return fmt.Errorf("the warm build was not fully cached (%s/%s)", w.cached, w.total)
	}
	return nil
}

// runAction runs the action binary as a runner would for a push to branch.
func runAction(ctx context.Context, s *teststack.Stack, bin, app, branch string) (result, error) {
	dir, err := os.MkdirTemp(s.Dir, "run-")
	if err != nil {
		return result{}, err
	}
	r := teststack.NewActionRunIn(dir, map[string]string{
		"registry":      "http://" + s.Registry,
		"repository":    "demo-app",
		"tags":          strings.NewReplacer("/", "-").Replace(branch),
		"context":       app,
		"build-args":    "BASE=" + s.BaseImage,
		"buildkit-host": s.BuildkitAddr,
	})
	if err := r.SetPush(branch, "main"); err != nil {
		return result{}, err
	}
	start := time.Now()
	if err := r.Exec(ctx, bin); err != nil {
		return result{}, fmt.Errorf("action failed: %w\n%s", err, r.StdoutTail(3000))
	}
	took := time.Since(start)
	o, err := r.ReadOutputs()
	if err != nil {
		return result{}, err
	}
	return result{took: took, cached: o["cached-steps"], total: o["total-steps"], cacheRef: o["cache-ref"], from: o["cache-from"]}, nil
}
