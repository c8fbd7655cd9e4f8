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
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

func main() {
	runs := flag.Int("runs", 3, fmt.Sprintf("runs per scenario (the report shows medians); the realistic fixture runs at least %d times", fixtureNamed(fxRealistic).minRuns))
	out := flag.String("out", "", "where to write the report (default BENCHMARKS.md at the repository root; a run with -only writes none unless given)")
	profiles := flag.String("profiles", "", "keep buildkitd's CPU profiles (pprof) of the scale study's largest warm build in this directory")
	only := flag.String("only", "", "comma-separated parts to run, for iterating: "+strings.Join(partNames(), ", ")+
		" (refs needs matrix; mounts or daemon alone with -out replaces only its section); every part when empty")
	flag.Parse()
	parts, err := selectParts(*only)
	if err == nil && *out == "" && *only == "" {
		*out = filepath.Join(teststack.RepoRoot(), "BENCHMARKS.md")
	}
	if err == nil && *profiles != "" {
		err = os.MkdirAll(*profiles, 0o755)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if err == nil {
		err = realMain(ctx, *runs, *out, *profiles, parts)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, runs int, out, profiles string, parts map[string]bool) error {
	if runs < 1 {
		return fmt.Errorf("-runs %d: need at least one", runs)
	}
	began, load := time.Now(), loadavg()
	fmt.Fprintln(os.Stderr, "bench: starting the local stack (the first run installs packages and builds buildkitd: minutes)")
	s, err := teststack.Start(ctx, teststack.Options{Log: os.Stderr, Debug: true})
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
	b := &bench{s: s, bin: bin, dir: dir, profiles: profiles, reg: newRegLog(s.RegistryLog, s.Registry), began: time.Now()}
	res := &results{runs: runs, parts: parts, samples: map[key][]sample{}, imageBytes: map[string]int64{},
		scopes: map[string][][]sample{}, scopeRefs: map[string][]string{}, fingerprints: map[string][]time.Duration{}}
	if res.bandwidth, err = b.measureBandwidth(ctx); err != nil {
		return fmt.Errorf("measure the registry's bandwidth: %w", err)
	}
	b.logf("registry loopback bandwidth: upload %s/s, download %s/s", fmtBytes(res.bandwidth.up), fmtBytes(res.bandwidth.down))
	if out != "" {
		// A long run's report so far, after each run of a fixture: a run
		// stopped later keeps it.
		b.checkpoint = func() {
			m := describeMachine(load)
			m.took = time.Since(began).Round(time.Second).String() + " (so far: stopped before the end)"
			if err := os.WriteFile(out, []byte(markdown(m, res, res.render())), 0o644); err != nil {
				b.logf("checkpoint: %v", err)
			}
		}
	}

	for _, f := range fixtures {
		if parts[f.name] {
			if err := b.scenarios(ctx, f, res); err != nil {
				return err
			}
		}
	}
	for _, p := range []struct {
		name string
		run  func(context.Context, *results) error
	}{{"matrix", b.matrix}, {"refs", b.scaleRefs}, {"min", b.modeMin}, {"scale", b.scaleSteps}} {
		if parts[p.name] {
			if err := p.run(ctx, res); err != nil {
				return err
			}
		}
	}
	var mres *mountsResults
	if parts["mounts"] {
		if mres, err = b.mounts(ctx, runs); err != nil {
			return err
		}
		res.mountSamples = mres.samples
	}

	var dres *daemonResults
	if parts["daemon"] {
		if dres, err = b.daemon(ctx, runs); err != nil {
			return err
		}
	}

	m := describeMachine(load)
	m.took = time.Since(began).Round(time.Second).String()
	// A study run alone replaces only its own section.
	for _, st := range []struct {
		name, heading string
		render        func() string
		markdown      func() string
	}{
		{"mounts", mountsHeading, func() string { return mres.render() }, mres.markdown},
		{"daemon", daemonHeading, func() string { return dres.render() }, dres.markdown},
	} {
		if len(parts) != 1 || !parts[st.name] {
			continue
		}
		fmt.Print("\n" + st.render())
		if out == "" {
			return nil
		}
		fmt.Printf("\nbench: done in %s; replacing the %q section of %s\n", m.took, st.heading, out)
		return spliceSection(out, st.heading, st.markdown())
	}
	report := res.render()
	fmt.Print("\n" + report)
	if mres != nil {
		fmt.Print("\n" + mres.render())
	}
	if dres != nil {
		fmt.Print("\n" + dres.render())
	}
	if out == "" {
		fmt.Printf("\nbench: done in %s; a partial run (-only) writes no report file\n", m.took)
		return nil
	}
	fmt.Printf("\nbench: done in %s; writing %s\n", m.took, out)
	return os.WriteFile(out, []byte(markdown(m, res, report)+mres.markdown()+dres.markdown()), 0o644)
}

// partNames are what -only selects: the fixtures' scenarios, then the studies.
// A function: fixtures gains its last entries in an init function.
func partNames() []string {
	var n []string
	for _, f := range fixtures {
		n = append(n, f.name)
	}
	return append(n, "matrix", "refs", "min", "scale", "mounts", "daemon")
}

// selectParts reads -only; every part when it is empty.
func selectParts(only string) (map[string]bool, error) {
	parts := map[string]bool{}
	if only == "" {
		for _, p := range partNames() {
			parts[p] = true
		}
		return parts, nil
	}
	var errs []error
	for _, p := range strings.Split(only, ",") {
		p = strings.TrimSpace(p)
		if !slices.Contains(partNames(), p) {
			errs = append(errs, fmt.Errorf("-only: unknown part %q; the parts are %s", p, strings.Join(partNames(), ", ")))
		}
		parts[p] = true
	}
	if parts["refs"] && !parts["matrix"] {
		errs = append(errs, errors.New("-only: refs imports the matrix scopes' caches: add matrix"))
	}
	return parts, errors.Join(errs...)
}

// scenarios runs the fixture's scenarios for each of its tools, runsOf times.
// Tools take turns within a scenario (their order rotates per run) so that a
// slow spell of the machine hits all of them alike.
func (b *bench) scenarios(ctx context.Context, f fixture, res *results) error {
	runs := res.runsOf(f)
	for r := 1; r <= runs; r++ {
		cx, err := f.prepare(filepath.Join(b.dir, fmt.Sprintf("%s-r%d", f.name, r)), fmt.Sprintf("run %d", r))
		if err != nil {
			return err
		}
		repo := func(tool string) string {
			if f.history {
				return fmt.Sprintf("bench/%s-%s", f.name, strings.ReplaceAll(tool, "+", "-"))
			}
			return fmt.Sprintf("bench/%s-r%d-%s", f.name, r, strings.ReplaceAll(tool, "+", "-"))
		}
		var args map[string]string
		if f.goBase {
			gobase, _, err := b.goBase(ctx)
			if err != nil {
				return err
			}
			args = map[string]string{"GOBASE": gobase}
		}
		if err := b.fingerprintCost(ctx, f, cx, args, res); err != nil {
			return err
		}
		for _, sc := range f.scenarios {
			if f.history && r > 1 && sc.name == scCold {
				continue
			}
			for _, tool := range rotate(f.tools, r-1) {
				if sc.name == scNewBranch && tool == toolPeer {
					// With one fixed ref, the last writer wins: another branch that
					// bumped a dependency built (and exported) after main did.
					j := job{tool: tool, repo: repo(tool), branch: "feature/deps-bump", context: cx.other, compression: f.compression}
					if _, err := b.measure(ctx, j); err != nil {
						return err
					}
					b.logf("%s run %d: peer: feature/deps-bump wrote %s last", f.name, r, j.cacheRef(b.s.Registry))
				}
				j := job{tool: tool, repo: repo(tool), branch: sc.branch, context: sc.context(cx), compression: f.compression, args: args, event: sc.event, pr: prOfRun(r)}
				if tool == toolMounts {
					j = j.withMounts()
				}
				if sc.fallback && tool == toolBuildctl {
					j.extraImports = []string{job{tool: tool, repo: j.repo, branch: "main"}.cacheRef(b.s.Registry)}
				}
				smp, err := b.measureFloor(ctx, j)
				if err != nil {
					return err
				}
				k := key{f.name, sc.name, tool}
				res.samples[k] = append(res.samples[k], smp)
				b.logf("%s run %d/%d %-17s %-8s %s", f.name, r, runs, sc.name, tool, smp)
			}
			if r == 1 && sc.name == scWarm {
				n, err := imageBytes(fmt.Sprintf("%s/%s:main", b.s.Registry, repo(toolAction)))
				if err != nil {
					return err
				}
				res.imageBytes[f.name] = n
			}
		}
		if b.checkpoint != nil {
			b.checkpoint()
		}
	}
	return nil
}

var scopes = []string{"a", "b", "c", "d"}

// matrix builds the app fixture in 4 cache scopes at once (one variant each, as a
// matrix of targets), once per tool, then rebuilds all 4 at once, runs times.
func (b *bench) matrix(ctx context.Context, res *results) error {
	cx, err := fixtureNamed("app").prepare(filepath.Join(b.dir, "matrix"), "matrix")
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
	cx, err := fixtureNamed("app").prepare(filepath.Join(b.dir, "refs"), "refs")
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
	cx, err := fixtureNamed("steps").prepare(filepath.Join(b.dir, "min"), "min")
	if err != nil {
		return err
	}
	j := job{tool: toolAction, repo: "bench/steps-min", branch: "main", context: cx.base, cacheMode: "min"}
	return b.coldThenWarm(ctx, j, "steps", ", cache-mode=min", res.runs, res, nil)
}

// coldThenWarm builds j once on its empty repository, then warm times more,
// recorded under fixture fx as scenarios "cold"+suffix and "warm"+suffix. With
// prof set, buildkitd's CPU is profiled during the warm builds.
func (b *bench) coldThenWarm(ctx context.Context, j job, fx, suffix string, warm int, res *results, prof *profiler) error {
	for i := 0; i <= warm; i++ {
		sc := scWarm + suffix
		if i == 0 {
			sc = scCold + suffix
		} else if prof != nil {
			prof.start(ctx)
		}
		smp, err := b.measure(ctx, j)
		if i > 0 && prof != nil {
			err = errors.Join(err, prof.stop())
		}
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
var stepCounts = []int{10, 50, 100, 200}

// scaleSteps builds generated Dockerfiles with the action: cold once, warm runs
// times, except the warm builds above 50 steps (a minute or more each here)
// once. buildkitd's CPU is profiled during the largest one's warm build.
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
		var prof *profiler
		if n == stepCounts[len(stepCounts)-1] {
			prof = b.newProfiler(fmt.Sprintf("gen-%d-warm", n))
		}
		if err := b.coldThenWarm(ctx, j, genKey(n, scCold).fixture, "", warm, res, prof); err != nil {
			return err
		}
		if prof != nil {
			if res.profile, err = summarize(ctx, prof.files); err != nil {
				return err
			}
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
	return fmt.Sprintf("%7s  %d/%d cached  start-up %s  context %s  %d solves  %d requests  GET %s",
		fmtDur(s.took), s.cached, s.total, fmtDur(s.startup), fmtDur(s.contextSend), len(s.solves), s.requests, fmtBytes(float64(s.getBytes)))
}

// group summarises concurrent samples in a log line.
func group(g []sample) string {
	var parts []string
	for _, s := range g {
		parts = append(parts, fmt.Sprintf("%d/%d", s.cached, s.total))
	}
	return fmt.Sprintf("slowest %s, cached %s, %d requests", fmtDur(slowest(g)), strings.Join(parts, " "), g[0].requests)
}
