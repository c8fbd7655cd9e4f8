package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// The real service: prometheus/pushgateway at a pinned version, its 33 module
// dependencies vendored. Its source is fetched through the Go module proxy
// into a cache outside the repository, never committed; the bench builds it
// with hack/bench/fixtures/pushgateway/Dockerfile, which replaces upstream's
// (that one copies a binary built outside Docker).
const (
	fxService     = "pushgateway"
	serviceModule = "github.com/prometheus/pushgateway"
	serviceVer    = "v1.11.5"
	// serviceSum is the module's go.sum hash: the download must match it.
	serviceSum = "h1:pofHdT/Fs2ktFJ882tXb83kgm8haDCghbm/k9K75ZuI="
	// serviceMain is the main package's file the partial and the pull
	// request change, one line each.
	serviceMain = "main.go"
	// servicePR is the pull request number of the first run's post-merge
	// scenario; run r merges servicePR+r-1.
	servicePR = 7
)

// prOfRun is the pull request run r opens and merges.
func prOfRun(run int) int { return servicePR + run - 1 }

// serviceSource is the vendored source tree of the service, prepared once per
// machine under ~/.cache/ecr-build-cache: go mod download -json of the pinned
// version, a writable copy, go mod vendor in it. Builds then need no network.
func serviceSource(ctx context.Context) (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	root := filepath.Join(home, ".cache", "ecr-build-cache", "bench-service")
	dir := filepath.Join(root, "pushgateway@"+serviceVer)
	if _, err := os.Stat(filepath.Join(dir, "vendor", "modules.txt")); err == nil {
		return dir, nil
	}
	// A module cache of its own: the fetched modules stay out of the
	// machine's and are read-only only there.
	env := append(os.Environ(), "GOMODCACHE="+filepath.Join(root, "mod"), "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", serviceModule+"@"+serviceVer)
	cmd.Env, cmd.Dir = env, os.TempDir()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s@%s through the Go module proxy: %w\n%s", serviceModule, serviceVer, err, stderrOf(err))
	}
	var m struct{ Dir, Sum, Error string }
	if err := json.Unmarshal(out, &m); err != nil {
		return "", fmt.Errorf("go mod download -json: %w", err)
	}
	if m.Error != "" || m.Sum != serviceSum {
		return "", fmt.Errorf("go mod download %s@%s: sum %q (want %s) %s", serviceModule, serviceVer, m.Sum, serviceSum, m.Error)
	}
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	if err := os.CopyFS(tmp, os.DirFS(m.Dir)); err != nil {
		return "", fmt.Errorf("copy %s: %w", m.Dir, err)
	}
	if err := makeWritable(tmp); err != nil {
		return "", err
	}
	cmd = exec.CommandContext(ctx, "go", "mod", "vendor")
	cmd.Env, cmd.Dir = env, tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go mod vendor in %s: %w\n%s", tmp, err, out)
	}
	return dir, os.Rename(tmp, dir)
}

func stderrOf(err error) string {
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

// makeWritable gives the owner write access under dir (the module cache's
// files are read-only).
func makeWritable(dir string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.Chmod(p, info.Mode().Perm()|0o200) //nolint:gosec // G122: the tree is the bench's own copy of the module, in its cache, which nothing else writes
	})
}

// vendoredModules counts the modules vendor/modules.txt lists.
func vendoredModules(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "vendor", "modules.txt"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "# ") {
			n++
		}
	}
	return n, nil
}

// prepareService writes run's contexts of the service into dir, each a git
// checkout: base (the pinned source with our Dockerfile, plus the lines the
// earlier runs added: main where the previous run's merge left it), partial
// (one more line of the main package on main) and branch (the run's pull
// request: partial's tree with another line of the main package, which the
// default branch holds after the squash merge). Upstream's .gitignore lists /vendor, so vendor/ is
// in each work tree as a CI step running go mod vendor leaves it: git-ignored,
// sent to BuildKit (upstream's .dockerignore lets it in).
func prepareService(ctx context.Context, dir string, run int) (contexts, error) {
	src, err := serviceSource(ctx)
	if err != nil {
		return contexts{}, err
	}
	n, err := vendoredModules(src)
	if err != nil {
		return contexts{}, fmt.Errorf("count the modules %s vendors: %w", src, err)
	}
	if n != serviceModules {
		return contexts{}, fmt.Errorf("%s vendors %d modules, the report says %d: update serviceModules", src, n, serviceModules)
	}
	c := contexts{base: filepath.Join(dir, "base"), partial: filepath.Join(dir, "partial"), branch: filepath.Join(dir, "branch")}
	if err := os.CopyFS(c.base, os.DirFS(src)); err != nil {
		return c, fmt.Errorf("copy %s: %w", src, err)
	}
	df, err := os.ReadFile(filepath.Join(teststack.RepoRoot(), "hack", "bench", "fixtures", fxService, "Dockerfile"))
	if err != nil {
		return c, err
	}
	if err := os.WriteFile(filepath.Join(c.base, "Dockerfile"), df, 0o644); err != nil {
		return c, err
	}
	partialLine := func(r int) string { return fmt.Sprintf("var benchPartial%d = %q", r, "changed on main") }
	prLine := func(r int) string {
		return fmt.Sprintf("var benchPullRequest%d = %q", prOfRun(r), "changed in the pull request")
	}
	for r := 1; r < run; r++ {
		for _, l := range []string{partialLine(r), prLine(r)} {
			if err := appendLine(filepath.Join(c.base, serviceMain), l); err != nil {
				return c, err
			}
		}
	}
	if err := commitContext(c.base, fmt.Sprintf("%s@%s, vendored, with the changes of %d runs", serviceModule, serviceVer, run-1)); err != nil {
		return c, err
	}
	for _, d := range []struct{ from, dir, line, msg string }{
		{c.base, c.partial, partialLine(run), "change a line of the main package"},
		{c.partial, c.branch, prLine(run), fmt.Sprintf("Change a line of the main package (#%d)", prOfRun(run))},
	} {
		if err := cloneContext(d.from, d.dir); err != nil {
			return c, err
		}
		if err := os.CopyFS(filepath.Join(d.dir, "vendor"), os.DirFS(filepath.Join(src, "vendor"))); err != nil {
			return c, fmt.Errorf("copy vendor/: %w", err)
		}
		if err := appendLine(filepath.Join(d.dir, serviceMain), d.line); err != nil {
			return c, err
		}
		if err := commitContext(d.dir, d.msg); err != nil {
			return c, err
		}
	}
	return c, nil
}

// serviceModules is how many modules the pinned version vendors
// (vendor/modules.txt); prepareService checks it.
const serviceModules = 33

// pairedOf is the median over runs of tool a's wall time over tool c's in the
// same run (back to back).
func (r *results) pairedOf(fx, sc, a, c string) float64 {
	sa, sc2 := r.samples[key{fx, sc, a}], r.samples[key{fx, sc, c}]
	var v []float64
	for i := range min(len(sa), len(sc2)) {
		v = append(v, took(sa[i])/took(sc2[i]))
	}
	return median(v)
}

func compile(s sample) float64 { return s.compile.Seconds() }

// serviceFloor is a scenario's floor on the service: the registry bytes the
// action+mounts build had to move at this run's loopback bandwidth, plus the
// compile that must happen, which is what that build's `go build` step ran
// (with the Go build cache kept only what changed compiles; nothing when the
// step was cached). Medians; bytes and compile in seconds.
func (r *results) serviceFloor(sc string) (bytes, compileSec float64) {
	k := key{fxService, sc, toolMounts}
	return r.floorSec(k), r.med(k, compile)
}

// floorSec is the median seconds k's builds had to move their blobs at this
// run's loopback bandwidth.
func (r *results) floorSec(k key) float64 {
	return r.med(k, floorDown)/r.bandwidth.down + r.med(k, floorUp)/r.bandwidth.up
}

// renderService is the real service's section: paired ratios of each action
// setup against buildctl, the floor beside them, and where the time of the
// builds with cache mounts goes.
func (r *results) renderService(b *strings.Builder) {
	fx := fxService
	f := fixtureNamed(fx)
	fmt.Fprintf(b, "== %s (%s@%s, %d modules): paired ratios (median of the per-run ratios, %d runs) and floors; "+
		"floor: the registry bytes the action+mounts build had to move at this run's loopback bandwidth plus the compile that must happen "+
		"(that build's go build step: with the Go build cache kept only what changed compiles); compile: the go build step's time per tool (0: cached)\n",
		fx, serviceModule, serviceVer, serviceModules, r.runsOf(f))
	fmt.Fprintf(b, "%-17s %9s %13s %9s %8s %8s %8s %9s %9s  %s\n", "scenario", "action/bk", "a+mounts/bk", "buildctl", "floor", "(bytes", "compile)", "floor/bk", "context", "compile action / action+mounts / buildctl")
	for _, sc := range f.scenarios {
		bk := r.med(key{fx, sc.name, toolBuildctl}, took)
		by, co := r.serviceFloor(sc.name)
		fmt.Fprintf(b, "%-17s %9s %13s %9s %8s %8s %8s %9s %9s  %s / %s / %s\n", sc.name,
			fmtRatio(r.pairedOf(fx, sc.name, toolAction, toolBuildctl)), fmtRatio(r.pairedOf(fx, sc.name, toolMounts, toolBuildctl)),
			fmtSec(bk), fmtSec(by+co), fmtSec(by), fmtSec(co), fmtRatio((by+co)/bk), fmtSec(r.med(key{fx, sc.name, toolAction}, contextSend)),
			fmtSec(r.med(key{fx, sc.name, toolAction}, compile)), fmtSec(r.med(key{fx, sc.name, toolMounts}, compile)), fmtSec(r.med(key{fx, sc.name, toolBuildctl}, compile)))
	}
	b.WriteString("cache mounts (action+mounts): its time against the action's without, and BuildKit's builds in order " +
		"(seeding the mount when one was imported, the build, saving the mount when a step ran); the mount's download is the GET bytes beyond the action's\n")
	fmt.Fprintf(b, "%-17s %9s %9s %9s %10s %10s  %s\n", "scenario", "+mounts", "action", "ratio", "GET +m", "GET a", "builds BuildKit recorded (action+mounts)")
	for _, sc := range f.scenarios {
		m, a := key{fx, sc.name, toolMounts}, key{fx, sc.name, toolAction}
		fmt.Fprintf(b, "%-17s %9s %9s %9s %10s %10s  %s\n", sc.name, fmtSec(r.med(m, took)), fmtSec(r.med(a, took)),
			fmtRatio(r.pairedOf(fx, sc.name, toolMounts, toolAction)), fmtBytes(r.med(m, getBytes)), fmtBytes(r.med(a, getBytes)), r.solves(m))
	}
	b.WriteString("\n")
}

// serviceTargets are issue 25's: the default branch's first build after a
// merge as warm as a re-run, a one-line change with cache mounts a fraction
// of buildctl's, and the mounts costing a warm build next to nothing.
func serviceTargets(r *results, fx string) []target {
	var ts []target
	pm := r.pairedOf(fx, scPostMerge, toolAction, toolBuildctl)
	by, co := r.serviceFloor(scPostMerge)
	bk := r.med(key{fx, scPostMerge, toolBuildctl}, took)
	ts = append(ts, target{pass: pm <= 0.10, check: "action/buildctl <= 0.10 on post-merge (" + fx + ", paired)",
		value: fmt.Sprintf("%s (with cache mounts %s; floor %s)", fmtRatio(pm), fmtRatio(r.pairedOf(fx, scPostMerge, toolMounts, toolBuildctl)), fmtRatio((by+co)/bk)),
		note: fmt.Sprintf("%s cached of the action's post-merge steps, %s for buildctl (imports main's ref only); %s; BuildKit received the context in %s",
			r.steps(key{fx, scPostMerge, toolAction}), r.steps(key{fx, scPostMerge, toolBuildctl}), r.overheadNote(fx, scPostMerge),
			fmtSec(r.med(key{fx, scPostMerge, toolAction}, contextSend)))})
	p := r.pairedOf(fx, scPartial, toolMounts, toolBuildctl)
	by, co = r.serviceFloor(scPartial)
	bk = r.med(key{fx, scPartial, toolBuildctl}, took)
	ts = append(ts, target{pass: p <= 0.30, check: "action+mounts/buildctl <= 0.30 on partial (" + fx + ", paired)",
		value: fmt.Sprintf("%s (floor %s)", fmtRatio(p), fmtRatio((by+co)/bk)),
		note: fmt.Sprintf("action+mounts %s: its go build step %s, builds BuildKit recorded %s, %s downloaded; buildctl %s, its go build step %s",
			fmtSec(r.med(key{fx, scPartial, toolMounts}, took)), fmtSec(r.med(key{fx, scPartial, toolMounts}, compile)), r.solves(key{fx, scPartial, toolMounts}),
			fmtBytes(r.med(key{fx, scPartial, toolMounts}, getBytes)), fmtSec(bk), fmtSec(r.med(key{fx, scPartial, toolBuildctl}, compile)))})
	w := r.pairedOf(fx, scWarm, toolMounts, toolAction)
	ts = append(ts, target{pass: w <= 1.1, check: "warm with cache mounts <= 1.1x warm without (" + fx + ", paired)",
		value: fmt.Sprintf("%.2fx (%s vs %s)", w, fmtSec(r.med(key{fx, scWarm, toolMounts}, took)), fmtSec(r.med(key{fx, scWarm, toolAction}, took))),
		note: fmt.Sprintf("builds BuildKit recorded for the warm build with mounts: %s, without: %s; GET bytes %s vs %s",
			r.solves(key{fx, scWarm, toolMounts}), r.solves(key{fx, scWarm, toolAction}),
			fmtBytes(r.med(key{fx, scWarm, toolMounts}, getBytes)), fmtBytes(r.med(key{fx, scWarm, toolAction}, getBytes)))})
	return append(ts, oneSolveTargets(r, fx)...)
}
