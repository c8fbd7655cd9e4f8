package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// A fixture is a build context with a Dockerfile, the tools that build it and
// the scenarios they build, in order.
type fixture struct {
	name string
	// what describes it in the report.
	what      string
	tools     []string
	scenarios []scenario
	// prepare writes the contexts of one run into dir; runTag makes a run's
	// changes its own.
	prepare func(dir, runTag string) (contexts, error)
	// compression is every job's layer compression; "" for the default (gzip).
	compression string
	// minRuns is the fewest runs of its scenarios, whatever -runs says.
	minRuns int
	// goBase gives its builds the Go toolchain image as build arg GOBASE.
	goBase bool
	// targets are its own targets; nil for the app and steps fixtures'.
	targets func(r *results, fx string) []target
	// history makes its runs one repository's history: every run builds in
	// the same repositories, from where the previous run left main, and the
	// cold scenario runs in the first run only (a cold build of it takes
	// minutes of CPU here).
	history bool
}

// scenario is one build of a fixture by every tool of the fixture.
type scenario struct {
	name    string
	branch  string
	context func(contexts) string
	// fallback makes buildctl import main's cache ref after its own, as a
	// hand-written fallback for a branch's first build does.
	fallback bool
	// event is the action's event: a push unless evPullRequest or evMerged.
	event string
}

// The action's events other than a plain push.
const (
	// evPullRequest: a pull_request event of the run's pull request
	// (prOfRun), from the scenario's branch (same repository) into main.
	evPullRequest = "pull_request"
	// evMerged: a push to main whose head commit is the squash merge of the
	// run's pull request ("Title (#N)").
	evMerged = "merged"
)

// contexts are the variants of a fixture's build context one run builds.
type contexts struct {
	base    string // as committed (or generated)
	partial string // one late source file changed
	other   string // deps bumped: another branch's content
	branch  string // another late source file changed: a new branch's change
}

// Scenario names shared by the report.
const (
	scCold          = "cold"
	scWarm          = "warm"
	scNewBranch     = "new branch"
	scPartial       = "partial"
	scBranchChanged = "new branch+change"
	scPostMerge     = "post-merge"
)

var fixtures = []fixture{
	{name: "app", what: "multi-stage: seconds of CPU and a 100 MiB layer early, sources late",
		tools: tools, scenarios: sameContentScenarios, prepare: committed("app")},
	{name: "steps", what: "54 small RUN/COPY steps, config first, sources last",
		tools: tools, scenarios: sameContentScenarios, prepare: committed("steps")},
	{name: "realistic", what: "dependency stage (1,200 files, ~120 MB, seconds of CPU), source stage over 8,000 files, final stage copying both",
		// Its scenarios carry issue 13's targets: the median of 5 paired
		// ratios is steadier than of 3 on a noisy machine.
		minRuns: 5,
		tools:   []string{toolAction, toolBuildctl}, prepare: generateRealistic, scenarios: []scenario{
			{name: scCold, branch: "main", context: base},
			{name: scWarm, branch: "main", context: base},
			{name: scBranchChanged, branch: "feature/change", context: func(c contexts) string { return c.branch }, fallback: true},
			{name: scPartial, branch: "main", context: func(c contexts) string { return c.partial }},
		}},
	// The realistic fixture again with zstd layers (issue 13 item 3), against
	// the gzip rows above.
	{name: "realistic-zstd", what: "the realistic fixture with compression zstd (image and cache)",
		tools: []string{toolAction, toolBuildctl}, prepare: generateRealistic, compression: "zstd", scenarios: []scenario{
			{name: scCold, branch: "main", context: base},
			{name: scWarm, branch: "main", context: base},
			{name: scPartial, branch: "main", context: func(c contexts) string { return c.partial }},
		}},
}

// The export skip's fixtures outside committed git trees (issue 25 section
// 3): every changed build must export in its one solve.
var (
	fxOutsideGit = "realistic-nogit"
	fxGenerated  = "realistic-generated"
)

func init() {
	fixtures = append(fixtures,
		fixture{name: fxService, what: fmt.Sprintf("%s@%s, %d modules vendored, multi-stage Go build with the build cache in a cache mount; "+
			"new branch+change is the pull request's build (pull_request event, pr-N), post-merge the default branch's first build after its squash merge, the same tree; "+
			"cold once, then each run a pull request merged on the history of the one before",
			serviceModule, serviceVer, serviceModules),
			tools: []string{toolAction, toolMounts, toolBuildctl}, goBase: true, targets: serviceTargets, history: true,
			prepare: func(dir, runTag string) (contexts, error) {
				var run int
				if _, err := fmt.Sscanf(runTag, "run %d", &run); err != nil {
					return contexts{}, fmt.Errorf("run tag %q: %w", runTag, err)
				}
				// go mod download and go mod vendor reach the Go module proxy.
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				defer cancel()
				return prepareService(ctx, dir, run)
			},
			scenarios: []scenario{
				{name: scCold, branch: "main", context: base},
				{name: scWarm, branch: "main", context: base},
				{name: scPartial, branch: "main", context: func(c contexts) string { return c.partial }},
				{name: scBranchChanged, branch: "feature/change", context: func(c contexts) string { return c.branch }, fallback: true, event: evPullRequest},
				{name: scPostMerge, branch: "main", context: func(c contexts) string { return c.branch }, event: evMerged},
			}},
		fixture{name: fxOutsideGit, what: "the realistic fixture's files in plain directories (no git work tree): the action fingerprints the filtered context's content",
			tools: []string{toolAction, toolBuildctl}, prepare: realisticOutsideGit, targets: oneSolveTargets, scenarios: []scenario{
				{name: scCold, branch: "main", context: base},
				{name: scWarm, branch: "main", context: base},
				{name: scBranchChanged, branch: "feature/change", context: func(c contexts) string { return c.branch }, fallback: true},
				{name: scPartial, branch: "main", context: func(c contexts) string { return c.partial }},
			}},
		fixture{name: fxGenerated, what: "the realistic fixture in git with a git-ignored generated file (" + generatedFile + "); partial: that file changed, HEAD the same",
			tools: []string{toolAction, toolBuildctl}, prepare: realisticGenerated, targets: oneSolveTargets, scenarios: []scenario{
				{name: scCold, branch: "main", context: base},
				{name: scWarm, branch: "main", context: base},
				{name: scPartial, branch: "main", context: func(c contexts) string { return c.partial }},
			}},
	)
}

// sameContentScenarios are the app and steps fixtures' scenarios: the new
// branch builds main's content.
var sameContentScenarios = []scenario{
	{name: scCold, branch: "main", context: base},
	{name: scWarm, branch: "main", context: base},
	{name: scNewBranch, branch: "feature/new", context: base},
	{name: scPartial, branch: "main", context: func(c contexts) string { return c.partial }},
}

func base(c contexts) string { return c.base }

func fixtureNamed(name string) fixture {
	for _, f := range fixtures {
		if f.name == name {
			return f
		}
	}
	panic("no fixture " + name)
}

// committed prepares a fixture committed under hack/bench/fixtures/NAME, whose
// deps.txt another branch bumps and whose src/late.txt the partial scenario
// changes, each context a git checkout of its own. The committed files are
// never changed.
func committed(name string) func(dir, runTag string) (contexts, error) {
	return func(dir, runTag string) (contexts, error) {
		src := filepath.Join(teststack.RepoRoot(), "hack", "bench", "fixtures", name)
		c := contexts{
			base:    filepath.Join(dir, "base"),
			partial: filepath.Join(dir, "partial"),
			other:   filepath.Join(dir, "other"),
		}
		for _, d := range []string{c.base, c.partial, c.other} {
			if err := os.CopyFS(d, os.DirFS(src)); err != nil {
				return c, fmt.Errorf("copy fixture %s: %w", name, err)
			}
		}
		if err := appendLine(filepath.Join(c.partial, "src", "late.txt"), "changed in "+runTag); err != nil {
			return c, err
		}
		if err := appendLine(filepath.Join(c.other, "deps.txt"), "libnew 1.0.0 (dependency bump on another branch)"); err != nil {
			return c, err
		}
		for _, d := range []struct{ dir, what string }{{c.base, "fixture"}, {c.partial, "change a late source file"}, {c.other, "bump a dependency"}} {
			if err := commitContext(d.dir, d.what+" ("+runTag+")"); err != nil {
				return c, err
			}
		}
		return c, nil
	}
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
// dir, a git checkout, for the scale study.
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
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(b.String()), 0o644); err != nil {
		return "", err
	}
	return ctx, commitContext(ctx, fmt.Sprintf("%d steps", n))
}
