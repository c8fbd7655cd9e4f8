// Command demo is `make demo`: it starts the local stack (registry + buildkitd),
// builds the action binary, and runs it the way a runner does (inputs in INPUT_*
// variables, outputs read back from GITHUB_OUTPUT) on a sample app three times:
// cold, again after pruning the builder (a fresh runner), and as the first build
// of a new branch. It prints the time and cached steps of each run.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/teststack"
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

	bin := filepath.Join(s.Dir, "ecr-build-cache")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build the action: %w", err)
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
	payload, _ := json.Marshal(map[string]any{"ref": "refs/heads/" + branch, "repository": map[string]any{"default_branch": "main"}})
	event := filepath.Join(dir, "event.json")
	if err := os.WriteFile(event, payload, 0o644); err != nil {
		return result{}, err
	}
	env := map[string]string{
		"GITHUB_ACTIONS":      "true",
		"GITHUB_EVENT_NAME":   "push",
		"GITHUB_REF":          "refs/heads/" + branch,
		"GITHUB_EVENT_PATH":   event,
		"GITHUB_OUTPUT":       filepath.Join(dir, "output"),
		"GITHUB_STEP_SUMMARY": filepath.Join(dir, "summary.md"),
		"INPUT_REGISTRY":      "http://" + s.Registry,
		"INPUT_REPOSITORY":    "demo-app",
		"INPUT_TAGS":          strings.NewReplacer("/", "-").Replace(branch),
		"INPUT_CONTEXT":       app,
		"INPUT_BUILD-ARGS":    "BASE=" + s.BaseImage,
		"INPUT_BUILDKIT-HOST": s.BuildkitAddr,
	}
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return result{}, err
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("action failed: %w (log: %s)", err, log.Name())
	}
	took := time.Since(start)
	raw, err := os.ReadFile(env["GITHUB_OUTPUT"])
	if err != nil {
		return result{}, err
	}
	o := teststack.ParseOutputs(string(raw))
	return result{took: took, cached: o["cached-steps"], total: o["total-steps"], cacheRef: o["cache-ref"], from: o["cache-from"]}, nil
}
