// Command bench is `make bench`: it measures the registry cache on the local
// stack (registry + buildkitd) the way ephemeral runners use it, against what a
// user would otherwise run, and writes BENCHMARKS.md.
//
// Every scenario builds the same fixture three ways, in the same run, on the
// same daemon and registry: the action binary (as a runner starts it, for a push
// event), buildctl with the flags of the ECR announcement and a cache ref per
// branch, and the usual peer setup (buildctl, one fixed cache ref for every
// branch, no fallback). The builder is pruned before every build, as on a fresh
// runner. Targets are reported PASS or MISS; a miss never fails the program.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/teststack"
)

func main() {
	runs := flag.Int("runs", 3, "runs per scenario (the report shows medians)")
	out := flag.String("out", filepath.Join(teststack.RepoRoot(), "BENCHMARKS.md"), "where to write the report")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, *runs, *out)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, runs int, out string) error {
	if runs < 1 {
		return fmt.Errorf("-runs %d: need at least one", runs)
	}
	began, load := time.Now(), loadavg()
	fmt.Fprintln(os.Stderr, "bench: starting the local stack (the first run installs packages and builds buildkitd: minutes)")
	s, err := teststack.Start(ctx, teststack.Options{Log: os.Stderr})
	if err != nil {
		return err
	}
	defer s.Close()
	// Short path: proxy sockets live here and unix socket paths are limited.
	dir, err := os.MkdirTemp("", "ebc-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := teststack.BuildBinary(ctx, dir)
	if err != nil {
		return err
	}
	b := &bench{s: s, bin: bin, dir: dir, reg: newRegLog(s.RegistryLog, s.Registry), began: time.Now()}
	res := &results{runs: runs, samples: map[key][]sample{}, imageBytes: map[string]int64{},
		scopes: map[string][][]sample{}, scopeRefs: map[string][]string{}}

	for _, f := range fixtures {
		if err := b.scenarios(ctx, f, res); err != nil {
			return err
		}
	}
	if err := b.matrix(ctx, res); err != nil {
		return err
	}
	if err := b.scaleRefs(ctx, res); err != nil {
		return err
	}
	if err := b.modeMin(ctx, res); err != nil {
		return err
	}
	if err := b.scaleSteps(ctx, res); err != nil {
		return err
	}

	m := describeMachine(load)
	m.took = time.Since(began).Round(time.Second).String()
	report := res.render()
	fmt.Print("\n" + report)
	fmt.Printf("\nbench: done in %s; writing %s\n", m.took, out)
	return os.WriteFile(out, []byte(markdown(m, res, report)), 0o644)
}

// scenarios runs cold, warm, new branch and partial for every tool, runs times.
// Tools take turns within a scenario (their order rotates per run) so that a
// slow spell of the machine hits all of them alike.
func (b *bench) scenarios(ctx context.Context, f fixture, res *results) error {
	for r := 1; r <= res.runs; r++ {
		cx, err := f.prepare(filepath.Join(b.dir, fmt.Sprintf("%s-r%d", f.name, r)), fmt.Sprintf("run %d", r))
		if err != nil {
			return err
		}
		repo := func(tool string) string { return fmt.Sprintf("bench/%s-r%d-%s", f.name, r, tool) }
		for _, sc := range []struct{ name, branch, context string }{
			{"cold", "main", cx.base},
			{"warm", "main", cx.base},
			{"new branch", "feature/new", cx.base},
			{"partial", "main", cx.partial},
		} {
			for _, tool := range rotate(tools, r-1) {
				if sc.name == "new branch" && tool == toolPeer {
					// With one fixed ref, the last writer wins: another branch that
					// bumped a dependency built (and exported) after main did.
					j := job{tool: tool, repo: repo(tool), branch: "feature/deps-bump", context: cx.other}
					if _, err := b.measure(ctx, j); err != nil {
						return err
					}
					b.logf("%s run %d: peer: feature/deps-bump wrote %s last", f.name, r, j.cacheRef(b.s.Registry))
				}
				smp, err := b.measure(ctx, job{tool: tool, repo: repo(tool), branch: sc.branch, context: sc.context})
				if err != nil {
					return err
				}
				k := key{f.name, sc.name, tool}
				res.samples[k] = append(res.samples[k], smp)
				b.logf("%s run %d/%d %-10s %-8s %s", f.name, r, res.runs, sc.name, tool, smp)
			}
			if r == 1 && sc.name == "warm" {
				n, err := imageBytes(fmt.Sprintf("%s/%s:main", b.s.Registry, repo(toolAction)))
				if err != nil {
					return err
				}
				res.imageBytes[f.name] = n
			}
		}
	}
	return nil
}

var scopes = []string{"a", "b", "c", "d"}

// matrix builds the app fixture in 4 cache scopes at once (one variant each, as a
// matrix of targets), once per tool, then rebuilds all 4 at once, runs times.
func (b *bench) matrix(ctx context.Context, res *results) error {
	cx, err := fixtures[0].prepare(filepath.Join(b.dir, "matrix"), "matrix")
	if err != nil {
		return err
	}
	jobs := func(tool string) []job {
		var js []job
		for _, sc := range scopes {
			js = append(js, job{tool: tool, repo: "bench/matrix-" + tool, branch: "main", scope: sc,
				context: cx.base, args: map[string]string{"VARIANT": sc}})
		}
		return js
	}
	for _, tool := range tools {
		g, err := b.measureGroup(ctx, jobs(tool))
		if err != nil {
			return err
		}
		res.addGroup(key{"app", "matrix first", tool}, g)
		b.logf("matrix first build %-8s %s", tool, group(g))
		for _, smp := range g {
			res.scopeRefs[tool] = append(res.scopeRefs[tool], smp.cacheRef)
		}
	}
	for r := 1; r <= res.runs; r++ {
		for _, tool := range rotate(tools, r-1) {
			g, err := b.measureGroup(ctx, jobs(tool))
			if err != nil {
				return err
			}
			res.addGroup(key{"app", "matrix rebuild", tool}, g)
			res.scopes[tool] = append(res.scopes[tool], g)
			b.logf("matrix rebuild run %d/%d %-8s %s", r, res.runs, tool, group(g))
		}
	}
	return nil
}

// importCounts are the numbers of cache refs the scale study imports.
var importCounts = []int{1, 2, 4}

// scaleRefs rebuilds matrix scope a (fully cached from its own ref) while also
// importing the other scopes' caches: what extra cache-from refs cost.
func (b *bench) scaleRefs(ctx context.Context, res *results) error {
	cx, err := fixtures[0].prepare(filepath.Join(b.dir, "refs"), "refs")
	if err != nil {
		return err
	}
	for r := 1; r <= res.runs; r++ {
		for _, n := range importCounts {
			for _, tool := range []string{toolAction, toolBuildctl} {
				refs := res.scopeRefs[tool]
				j := job{tool: tool, repo: "bench/matrix-" + tool, branch: "main", scope: scopes[0],
					context: cx.base, args: map[string]string{"VARIANT": scopes[0]}, extraImports: refs[1:n]}
				smp, err := b.measure(ctx, j)
				if err != nil {
					return err
				}
				k := key{"app", fmt.Sprintf("%d refs", n), tool}
				res.samples[k] = append(res.samples[k], smp)
				b.logf("import refs run %d/%d %d %-8s %s", r, res.runs, n, tool, smp)
			}
		}
	}
	return nil
}

// modeMin rebuilds the steps fixture with the action's cache-mode=min: how much
// of a warm build of many small steps is the mode=max cache export.
func (b *bench) modeMin(ctx context.Context, res *results) error {
	cx, err := fixtures[1].prepare(filepath.Join(b.dir, "min"), "min")
	if err != nil {
		return err
	}
	j := job{tool: toolAction, repo: "bench/steps-min", branch: "main", context: cx.base, cacheMode: "min"}
	return b.coldThenWarm(ctx, j, "steps", ", cache-mode=min", res.runs, res)
}

// coldThenWarm builds j once on its empty repository, then warm times more,
// recorded under fixture fx as scenarios "cold"+suffix and "warm"+suffix.
func (b *bench) coldThenWarm(ctx context.Context, j job, fx, suffix string, warm int, res *results) error {
	for i := 0; i <= warm; i++ {
		sc := "warm" + suffix
		if i == 0 {
			sc = "cold" + suffix
		}
		smp, err := b.measure(ctx, j)
		if err != nil {
			return err
		}
		k := key{fx, sc, j.tool}
		res.samples[k] = append(res.samples[k], smp)
		b.logf("%s %-5s %s", fx, sc, smp)
	}
	return nil
}

// stepCounts are the generated Dockerfiles' sizes in the scale study.
var stepCounts = []int{10, 50, 200}

// scaleSteps builds generated Dockerfiles with the action: cold once, warm runs
// times, except the 200-step warm build (minutes on its own here) once.
func (b *bench) scaleSteps(ctx context.Context, res *results) error {
	for _, n := range stepCounts {
		dir, err := generate(b.dir, n)
		if err != nil {
			return err
		}
		j := job{tool: toolAction, repo: fmt.Sprintf("bench/scale-%d", n), branch: "main", context: dir}
		warm := res.runs
		if n > 50 {
			warm = 1
		}
		if err := b.coldThenWarm(ctx, j, fmt.Sprintf("gen-%d", n), "", warm, res); err != nil {
			return err
		}
	}
	return nil
}

func rotate(s []string, n int) []string {
	n %= len(s)
	return append(slices.Clone(s[n:]), s[:n]...)
}

func (b *bench) logf(format string, args ...any) {
	el := time.Since(b.began).Round(time.Second)
	fmt.Fprintf(os.Stderr, "[%02d:%02d] %s\n", int(el.Minutes()), int(el.Seconds())%60, fmt.Sprintf(format, args...))
}

func (s sample) String() string {
	return fmt.Sprintf("%7s  %d/%d cached  start-up %s  %d solves  %d requests  GET %s",
		fmtDur(s.took), s.cached, s.total, fmtDur(s.startup), len(s.solves), s.requests, fmtBytes(float64(s.getBytes)))
}

// group summarises concurrent samples in a log line.
func group(g []sample) string {
	var parts []string
	for _, s := range g {
		parts = append(parts, fmt.Sprintf("%d/%d", s.cached, s.total))
	}
	return fmt.Sprintf("slowest %s, cached %s, %d requests", fmtDur(slowest(g)), strings.Join(parts, " "), g[0].requests)
}
