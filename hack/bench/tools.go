package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// The three ways of running the same build that every scenario compares.
const (
	toolAction   = "action"   // the action binary, run as a runner runs it
	toolBuildctl = "buildctl" // buildctl with the ECR announcement's flags, a cache ref per branch
	toolPeer     = "peer"     // the usual peer setup: one fixed cache ref for every branch, no fallback
)

var tools = []string{toolAction, toolBuildctl, toolPeer}

// job is one build of a fixture by one tool.
type job struct {
	tool    string
	repo    string // repository in the stack's registry: image and cache tags
	branch  string
	scope   string // matrix cache scope; "" for none
	context string // build context (holds the Dockerfile)
	args    map[string]string
	// extraImports are further cache refs to import, after the tool's own.
	extraImports []string
	cacheMode    string // the action's cache-mode input; "" for its default (max)
	cacheMounts  string // the action's cache-mounts input; "" for none
	sharedMounts string // its cache-mounts-shared-builder: the bench's builder is not the action's
	// compression is the layers' compression, for the image and the cache
	// alike (the action's input, buildctl's compression= on both); "" for
	// the default (gzip).
	compression string
	// event is the action's event (scenario.event); "" for a push.
	event string
	// pr is the pull request of an evPullRequest or evMerged event.
	pr int
}

// sample is what one build (or one concurrent group of builds) measured.
type sample struct {
	took    time.Duration // process start to exit
	startup time.Duration // process start to its first BuildKit call
	tail    time.Duration // BuildKit's last reply to process exit
	cached  int
	total   int
	traffic
	cacheRef string      // the ref the build exported its cache to
	imports  []string    // the action's imported cache refs (its cache-from output)
	floor    *floorBytes // the build's floor (action builds of the fixtures only)
	// BuildKit's own phases, from buildctl's progress (the action runs the same).
	// stepsPhase runs from the first step's start to the last step's end.
	stepsPhase, cacheExport, imageExport time.Duration
	// contextSend is how long BuildKit took to receive the build context (the
	// vertex contextVertex), for buildctl and the action alike; 0 when the
	// Dockerfile reads no context.
	contextSend time.Duration
	// compile is how long the steps that run `go build` took; 0 when none ran.
	compile time.Duration
	missed  []string // steps buildctl ran (not served from cache)
	// solves are the builds buildkitd recorded for this one, with their durations.
	solves []time.Duration
	// daemonCPU is the CPU time buildkitd used during the build (single builds).
	daemonCPU time.Duration
	// actionRuns are the action's reports of the runs in this sample: one per
	// action build, every job's for a concurrent group; none for buildctl.
	actionRuns []actionRun
	at         time.Time // when the build (or group) started
}

// actionRun is what one run of the action reported about its cache export.
type actionRun struct {
	cacheExport string   // its cache-export output
	fallbacks   []string // its fallbacks output: the fallbacks that fired, in its order
}

// bench holds what every build needs.
type bench struct {
	s   *teststack.Stack
	bin string // the action binary
	dir string // scratch: proxy sockets, run directories
	// profiles is where to keep buildkitd's CPU profiles; "" keeps none.
	profiles string
	reg      *regLog
	began    time.Time
	// gobase is the Go toolchain image (goBase), its Go version goVersion.
	gobase, goVersion string
	// checkpoint writes the report so far; nil without an output file.
	checkpoint func()
}

func (j job) imageRef(registry string) string {
	return registry + "/" + j.repo + ":" + slug(j.branch, j.scope)
}

// cacheRef is the ref buildctl exports to: per branch (and scope) for the
// announcement's flags, one fixed tag for the peer setup.
func (j job) cacheRef(registry string) string {
	if j.tool == toolPeer {
		return registry + "/" + j.repo + ":buildcache"
	}
	return registry + "/" + j.repo + ":cache-" + slug(j.branch, j.scope)
}

// exportFlags are buildctl's image output and cache export: the flags of the
// ECR announcement, plus registry.insecure for the plain-HTTP loopback
// registry, and the job's compression on both, as the action sets it.
func (j job) exportFlags(registry string) []string {
	comp := ""
	if j.compression != "" {
		comp = ",compression=" + j.compression
	}
	return []string{
		"--output", "type=image,name=" + j.imageRef(registry) + ",push=true,registry.insecure=true" + comp,
		"--export-cache", "type=registry,ref=" + j.cacheRef(registry) + ",mode=max,image-manifest=true,oci-mediatypes=true,registry.insecure=true" + comp,
	}
}

var notTagChar = regexp.MustCompile(`[^A-Za-z0-9._-]`)

func slug(branch, scope string) string {
	s := notTagChar.ReplaceAllString(branch, "-")
	if scope != "" {
		s += "-" + scope
	}
	return s
}

func (b *bench) buildArgs(j job) map[string]string {
	args := map[string]string{"BASE": b.s.BaseImage}
	for k, v := range j.args {
		args[k] = v
	}
	return args
}

// build runs one job and measures its time, start-up and steps (not traffic:
// concurrent builds share the registry log, so callers mark it).
func (b *bench) build(ctx context.Context, j job) (sample, error) {
	p, err := newConnProxy(b.dir, b.s.BuildkitAddr)
	if err != nil {
		return sample{}, err
	}
	defer p.close()
	var smp sample
	if j.tool == toolAction {
		err = b.runAction(ctx, j, p, &smp)
	} else {
		err = b.runBuildctl(ctx, j, p, &smp)
	}
	if err != nil {
		return smp, fmt.Errorf("%s build of %s (branch %s): %w", j.tool, j.repo, j.branch, err)
	}
	return smp, nil
}

// timed runs a tool's process and sets the sample's times from it and from
// what its proxy saw.
func (s *sample) timed(p *connProxy, run func() error) error {
	start := time.Now()
	err := run()
	end := time.Now()
	s.took = end.Sub(start)
	if t := p.firstConnect(); !t.IsZero() {
		s.startup = t.Sub(start)
	}
	if t := p.lastReply(); !t.IsZero() {
		s.tail = end.Sub(t)
	}
	return err
}

func (b *bench) runAction(ctx context.Context, j job, p *connProxy, smp *sample) error {
	dir, err := os.MkdirTemp(b.dir, "run-")
	if err != nil {
		return err
	}
	var args []string
	for k, v := range b.buildArgs(j) {
		args = append(args, k+"="+v)
	}
	slices.Sort(args)
	inputs := map[string]string{
		"registry":      "http://" + b.s.Registry,
		"repository":    j.repo,
		"tags":          slug(j.branch, j.scope),
		"context":       j.context,
		"build-args":    strings.Join(args, "\n"),
		"cache-scope":   j.scope,
		"cache-from":    strings.Join(j.extraImports, "\n"),
		"cache-mode":    j.cacheMode,
		"cache-mounts":  j.cacheMounts,
		"compression":   j.compression,
		"buildkit-host": p.addr(),
	}
	if j.sharedMounts != "" {
		inputs["cache-mounts-shared-builder"] = j.sharedMounts
	}
	r := teststack.NewActionRunIn(dir, inputs)
	if err := setEvent(r, j); err != nil {
		return err
	}
	if err := smp.timed(p, func() error { return r.Exec(ctx, b.bin) }); err != nil {
		return fmt.Errorf("%w\n%s", err, r.StdoutTail(4000))
	}
	o, err := r.ReadOutputs()
	if err != nil {
		return err
	}
	if smp.cached, err = strconv.Atoi(o["cached-steps"]); err != nil {
		return fmt.Errorf("output cached-steps: %w", err)
	}
	if smp.total, err = strconv.Atoi(o["total-steps"]); err != nil {
		return fmt.Errorf("output total-steps: %w", err)
	}
	smp.cacheRef = o["cache-ref"]
	smp.imports = strings.Fields(o["cache-from"])
	if smp.contextSend, err = readVertexTime(r.Stdout(), isContext); err != nil {
		return err
	}
	if smp.compile, err = readVertexTime(r.Stdout(), isCompile); err != nil {
		return err
	}
	run, err := readActionRun(o)
	if err != nil {
		return err
	}
	smp.actionRuns = []actionRun{run}
	return os.RemoveAll(dir)
}

// readActionRun reads the action's cache-export and fallbacks outputs.
func readActionRun(o map[string]string) (actionRun, error) {
	exp := o["cache-export"]
	if exp == "" {
		return actionRun{}, errors.New("output cache-export is missing: the action built from this tree does not report its cache export " +
			"(outputs cache-export and fallbacks, issue 13), which hack/bench counts in its fallbacks section; bench a tree whose action sets them")
	}
	run := actionRun{cacheExport: exp}
	for _, f := range strings.Split(o["fallbacks"], ",") {
		if f = strings.TrimSpace(f); f != "" {
			run.fallbacks = append(run.fallbacks, f)
		}
	}
	return run, nil
}

func (b *bench) runBuildctl(ctx context.Context, j job, p *connProxy, smp *sample) error {
	ref := j.cacheRef(b.s.Registry)
	args := []string{"--addr", p.addr(), "build", "--progress", "rawjson",
		"--frontend", "dockerfile.v0", "--local", "context=" + j.context, "--local", "dockerfile=" + j.context}
	var opts []string
	for k, v := range b.buildArgs(j) {
		opts = append(opts, "build-arg:"+k+"="+v)
	}
	slices.Sort(opts)
	for _, o := range opts {
		args = append(args, "--opt", o)
	}
	args = append(args, j.exportFlags(b.s.Registry)...)
	for _, imp := range append([]string{ref}, j.extraImports...) {
		args = append(args, "--import-cache", "type=registry,ref="+imp+",registry.insecure=true")
	}
	home := filepath.Join(b.dir, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, b.s.Tool("buildctl"), args...)
	// Nothing from the machine: no docker config, no AWS settings, no proxies.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "AWS_EC2_METADATA_DISABLED=true"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := smp.timed(p, cmd.Run); err != nil {
		return fmt.Errorf("%w\n%s", err, teststack.Tail(stderr.String(), 4000))
	}
	var err error
	smp.cached, smp.total, err = readProgress(&stderr, smp)
	smp.cacheRef = ref
	return err
}

// stepName is the action's definition of a Dockerfile step: a vertex named
// "[n/m] ...", "[stage n/m] ..." or "[platform stage n/m] ...", except FROM.
// The frontend pads n to the width of m: "[ 1/11]", "[deps  2/10]".
var stepName = regexp.MustCompile(`^\[(?:[^\]]* )?\d+/\d+\] `)

// contextVertex is the vertex in which BuildKit receives the build context
// from the client (the Dockerfile frontend's local source "context").
const contextVertex = "[internal] load build context"

// plainLine is a line of BuildKit's plain progress (progressui): "#N text".
var plainLine = regexp.MustCompile(`^#(\d+) (.*)$`)

// isContext matches the vertex in which BuildKit receives the build context.
func isContext(name string) bool { return name == contextVertex }

// isCompile matches a Dockerfile step that runs `go build`.
func isCompile(name string) bool {
	return stepName.MatchString(name) && strings.Contains(name, " RUN ") && strings.Contains(name, "go build")
}

// readVertexTime sums the time of every vertex whose name match accepts in the
// action's stdout, BuildKit's plain progress: the time on the vertex's "#N DONE
// 1.7s" line (0.1 s resolution). A vertex's name line may be printed again after
// other vertices' lines; its end line (DONE, CACHED, ERROR, CANCELED) once. Each
// solve's display numbers its vertices from 1, so N stands for the vertex from
// its name line to its end line only.
func readVertexTime(stdout string, match func(name string) bool) (time.Duration, error) {
	var sum time.Duration
	open := map[string]bool{}
	for _, l := range strings.Split(stdout, "\n") {
		m := plainLine.FindStringSubmatch(strings.TrimSuffix(l, "\r"))
		if m == nil {
			continue
		}
		n, text := m[1], m[2]
		switch {
		case match(text):
			open[n] = true
		case !open[n]:
		case text == "CACHED", text == "CANCELED", strings.HasPrefix(text, "ERROR"):
			delete(open, n)
		case text == "DONE":
			delete(open, n) // no interval recorded
		case strings.HasPrefix(text, "DONE "):
			d, err := time.ParseDuration(strings.TrimPrefix(text, "DONE "))
			if err != nil {
				return 0, fmt.Errorf("read a step's time in the action's progress line %q: %w", l, err)
			}
			sum += d
			delete(open, n)
		}
	}
	return sum, nil
}

// readProgress reads buildctl's --progress rawjson stream (one SolveStatus per
// JSON value). It counts steps as the action does (a vertex is reported several
// times, so steps are keyed by digest and cached if any report says so) and
// times the export phases and the build context's transfer.
func readProgress(r io.Reader, smp *sample) (cached, total int, err error) {
	steps := map[digest.Digest]bool{}
	names := map[digest.Digest]string{}
	sends := map[digest.Digest]time.Duration{} // contextVertex, per vertex (one per local source)
	compiles := map[digest.Digest]time.Duration{}
	var first, last time.Time
	dec := json.NewDecoder(r)
	for {
		var st client.SolveStatus
		if err := dec.Decode(&st); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return 0, 0, fmt.Errorf("read buildctl progress: %w", err)
		}
		for _, v := range st.Vertexes {
			if v.Started != nil && v.Completed != nil {
				switch {
				case strings.HasPrefix(v.Name, "exporting cache"):
					smp.cacheExport = v.Completed.Sub(*v.Started)
				case strings.HasPrefix(v.Name, "exporting to image"):
					smp.imageExport = v.Completed.Sub(*v.Started)
				case isContext(v.Name):
					sends[v.Digest] = v.Completed.Sub(*v.Started)
				case isCompile(v.Name) && !v.Cached:
					compiles[v.Digest] = v.Completed.Sub(*v.Started)
				}
			}
			loc := stepName.FindStringIndex(v.Name)
			if loc == nil || strings.HasPrefix(v.Name[loc[1]:], "FROM ") {
				continue
			}
			steps[v.Digest] = steps[v.Digest] || v.Cached
			names[v.Digest] = v.Name
			if v.Started != nil && (first.IsZero() || v.Started.Before(first)) {
				first = *v.Started
			}
			if v.Completed != nil && v.Completed.After(last) {
				last = *v.Completed
			}
		}
	}
	if !first.IsZero() && last.After(first) {
		smp.stepsPhase = last.Sub(first)
	}
	for _, d := range sends {
		smp.contextSend += d
	}
	for _, d := range compiles {
		smp.compile += d
	}
	for d, c := range steps {
		if c {
			cached++
		} else {
			smp.missed = append(smp.missed, names[d])
		}
	}
	slices.Sort(smp.missed)
	return cached, len(steps), nil
}

// measure models one build on a fresh runner: prune the builder, then build,
// with the registry traffic between two marks of its log.
func (b *bench) measure(ctx context.Context, j job) (sample, error) {
	group, err := b.measureGroup(ctx, []job{j})
	if err != nil {
		return sample{}, err
	}
	return group[0], nil
}

// measureGroup prunes the builder and runs jobs concurrently, as a matrix's
// jobs start together. The registry traffic of the whole group goes into the
// first sample; the group's wall time is the slowest job's.
func (b *bench) measureGroup(ctx context.Context, jobs []job) ([]sample, error) {
	if err := b.s.Prune(ctx); err != nil {
		return nil, err
	}
	from, err := b.reg.mark(ctx)
	if err != nil {
		return nil, err
	}
	cpu0, err := b.s.BuildkitdCPU()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	out := make([]sample, len(jobs))
	errs := make([]error, len(jobs))
	done := make(chan int)
	for i, j := range jobs {
		go func() { out[i], errs[i] = b.build(ctx, j); out[i].at = start; done <- i }()
	}
	for range jobs {
		<-done
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	to, err := b.reg.mark(ctx)
	if err != nil {
		return nil, err
	}
	if out[0].traffic, err = b.reg.between(from, to); err != nil {
		return nil, err
	}
	if len(jobs) == 1 {
		cpu1, err := b.s.BuildkitdCPU()
		if err != nil {
			return nil, err
		}
		out[0].daemonCPU = cpu1 - cpu0
		out[0].solves, err = b.solves(ctx, start)
		return out, err
	}
	return out, nil
}
