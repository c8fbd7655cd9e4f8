package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/config"
	"github.com/ecr-build-cache/ecr-build-cache/internal/ghout"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// The run's decisions, tested with fakes of its two network boundaries; the
// real BuildKit and registry run in the other tests of this package.

// fakeSolver plays a build whose steps are cached as listed; every Solve call's
// options are recorded.
type fakeSolver struct {
	cached    []bool
	exportErr string // a failed "exporting cache" vertex (ignore-error=true)
	// pushErrs fail the image push of the first solves that push, in turn.
	pushErrs []string
	// hangExport holds a cache export until the solve is stopped, after the
	// image was pushed when hangAfterPush is set.
	hangExport, hangAfterPush bool
	// took is how long each step that runs takes; names, when set, name the steps.
	took  time.Duration
	names []string
	// failWithCache fails every solve that imports a cache, with this error.
	failWithCache string
	calls         []client.SolveOpt
}

const fakeDigest = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func (f *fakeSolver) Solve(ctx context.Context, _ *llb.Definition, opt client.SolveOpt, ch chan *client.SolveStatus) (*client.SolveResponse, error) {
	defer close(ch)
	f.calls = append(f.calls, opt)
	if f.failWithCache != "" && len(opt.CacheImports) > 0 {
		return nil, errors.New(f.failWithCache)
	}
	now := time.Now()
	st := &client.SolveStatus{}
	vertex := func(name, err string) {
		st.Vertexes = append(st.Vertexes, &client.Vertex{Digest: digest.FromString(name), Name: name, Error: err, Started: &now, Completed: &now})
	}
	for i, c := range f.cached {
		name, done := fmt.Sprintf("[%d/%d] RUN step %d", i+1, len(f.cached), i), now
		if i < len(f.names) {
			name = f.names[i]
		}
		if !c {
			done = now.Add(f.took)
		}
		st.Vertexes = append(st.Vertexes, &client.Vertex{
			Digest: digest.FromString(fmt.Sprint(i)), Name: name, Cached: c, Started: &now, Completed: &done,
		})
	}
	send := func() error {
		select {
		case ch <- st:
			st = &client.SolveStatus{}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	resp := &client.SolveResponse{ExporterResponse: map[string]string{}}
	if len(opt.Exports) > 0 {
		push := opt.Exports[0].Attrs["push"] == "true"
		if push && len(f.pushErrs) > 0 {
			err := f.pushErrs[0]
			f.pushErrs = f.pushErrs[1:]
			vertex("exporting to image", err)
			_ = send()
			return nil, errors.New(err)
		}
		vertex("exporting to image", "")
		if push && (!f.hangExport || f.hangAfterPush) {
			st.Statuses = append(st.Statuses,
				&client.VertexStatus{ID: "exporting manifest " + fakeDigest, Vertex: digest.FromString("exporting to image"), Completed: &now},
				&client.VertexStatus{ID: "pushing manifest for " + opt.Exports[0].Attrs["name"], Vertex: digest.FromString("exporting to image"), Completed: &now})
		}
		resp.ExporterResponse["containerimage.digest"] = fakeDigest
	}
	if len(opt.CacheExports) > 0 {
		switch {
		case f.hangExport:
			st.Vertexes = append(st.Vertexes, &client.Vertex{Digest: "sha256:export", Name: "exporting cache to registry", Started: &now})
			_ = send()
			<-ctx.Done()
			return nil, ctx.Err()
		case f.exportErr != "":
			vertex("exporting cache to registry", f.exportErr)
		default:
			resp.ExporterResponse["cache.manifest"] = `{"digest":"sha256:c"}`
		}
	}
	if err := send(); err != nil {
		return nil, err
	}
	return resp, nil
}

// fakeRegistry answers probes from refs and digests from digests, and records
// tags and annotations.
type fakeRegistry struct {
	refs      map[string]registry.Ref
	lost      map[string][]string // blobs CheckBlobs finds missing, by ref
	digests   map[string]string
	layers    map[string]map[string]bool
	tagErr    error
	tagged    []string
	staged    []string
	annotated []string
	sets      []map[string]string // every Annotate's annotations
}

func (f *fakeRegistry) Digest(_ context.Context, ref string) (string, error) {
	return f.digests[ref], nil
}

func (f *fakeRegistry) Annotate(_ context.Context, ref string, set map[string]string) (string, error) {
	f.annotated = append(f.annotated, ref+" "+set[registry.InputsAnnotation])
	f.sets = append(f.sets, set)
	return "sha256:annotated", nil
}

func (f *fakeRegistry) Probe(_ context.Context, refs []string) []registry.Ref {
	var out []registry.Ref
	for _, r := range refs {
		p, ok := f.refs[r]
		if !ok {
			p = registry.Ref{Ref: r}
		}
		out = append(out, p)
	}
	return out
}

// CheckBlobs finds the blobs lost lists missing, and every other.
func (f *fakeRegistry) CheckBlobs(_ context.Context, p *registry.Ref) {
	p.Missing = f.lost[p.Ref]
	p.Complete = len(p.Missing) == 0
}

func (f *fakeRegistry) Tag(_ context.Context, from registry.Ref, to string) error {
	if f.tagErr != nil {
		return f.tagErr
	}
	f.tagged = append(f.tagged, from.Ref+" -> "+to)
	return nil
}

func (f *fakeRegistry) Layers(_ context.Context, ref string) (map[string]bool, error) {
	if l, ok := f.layers[ref]; ok {
		return l, nil
	}
	return nil, errors.New("not found")
}

func (f *fakeRegistry) Insecure(string) bool { return false }

func (f *fakeRegistry) Stage(_ context.Context, image, ref, platform string, _ map[string]string) error {
	f.staged = append(f.staged, image+" as "+ref+" ("+platform+")")
	return nil
}

const repo = "registry.test/app"

func cache(ref string, layers ...string) registry.Ref {
	l := map[string]bool{}
	for _, d := range layers {
		l[d] = true
	}
	return registry.Ref{Ref: ref, Kind: registry.Cache, Layers: l, Complete: true}
}

// warm is a complete cache marked with the inputs of testRunner's build, as a
// build of the same files wrote it: a run expects every step from it.
func warm(t *testing.T, ref string, layers ...string) registry.Ref {
	t.Helper()
	c := cache(ref, layers...)
	c.Annotations = map[string]string{registry.InputsAnnotation: inputsOf(t, false)}
	return c
}

// testRunner is a runner on fakes, for a push of branch feature to repo.
// testRun is a runner and the config its slices came from, which the policy
// is decided from.
type testRun struct {
	*runner
	cfg *config.Config
}

// with changes the config, and the runner's slices of it alike.
func (r *testRun) with(f func(c *config.Config)) {
	f(r.cfg)
	r.image, r.inputs, r.cache, r.hostNetwork = r.cfg.Image, r.cfg.Build, r.cfg.Cache, r.cfg.BuildkitHostNetwork
}

func testRunner(t *testing.T, s *fakeSolver, reg *fakeRegistry, push bool) (*testRun, *bytes.Buffer, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GITHUB_OUTPUT": filepath.Join(dir, "output")}
	var out bytes.Buffer
	w := ghout.NewWriter(&out)
	a := githubactions.New(githubactions.WithGetenv(func(k string) string { return env[k] }), githubactions.WithWriter(w.Commands()))
	cfg := &config.Config{
		Image: config.Image{Repository: "app", Tags: []string{"latest"}, Push: push},
		Build: config.Build{Context: dir, Dockerfile: filepath.Join(dir, "Dockerfile")},
		Cache: config.Cache{CacheRepository: "app", CacheTagPrefix: cacheref.DefaultPrefix, CacheMode: "max", CacheExport: cacheref.ExportAuto},
		Event: cacheref.Event{Name: "push", Ref: "refs/heads/feature"},
	}
	r := &runner{a: a, image: cfg.Image, inputs: cfg.Build, cache: cfg.Cache, out: w, solver: s, reg: reg, host: "registry.test"}
	return &testRun{runner: r, cfg: cfg}, &out, env
}

func refOf(branch string) string {
	return repo + ":" + cacheref.Tag(cacheref.DefaultPrefix, cacheref.BranchKey(branch), "", "")
}

func decided(t *testing.T, r *testRun) cacheref.Decision {
	t.Helper()
	d, err := decidePolicy(r.a, r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// runPhases runs every phase after the target, as Run does, and returns what
// the export phase did.
func runPhases(t *testing.T, r *testRun) exported {
	t.Helper()
	plan := planned(t, r)
	b, err := r.build(context.Background(), plan)
	if err != nil {
		t.Fatal(err)
	}
	return finish(t, r, plan, b)
}

// planned runs the plan phase.
func planned(t *testing.T, r *testRun) cachePlan {
	t.Helper()
	plan, err := r.plan(context.Background(), target{host: r.host}, decided(t, r))
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// finish runs the phases after the build.
func finish(t *testing.T, r *testRun, plan cachePlan, b built) exported {
	t.Helper()
	ctx := context.Background()
	if err := r.stage(ctx, b); err != nil {
		t.Fatal(err)
	}
	exp, err := r.export(ctx, plan, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.report(ctx, plan, b, exp, nil); err != nil {
		t.Fatal(err)
	}
	return exp
}

func outputs(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(env["GITHUB_OUTPUT"])
	if err != nil {
		t.Fatal(err)
	}
	return teststack.ParseOutputs(string(raw))
}

func TestPlanImportsOnlyTheBestRealCache(t *testing.T) {
	t.Parallel()
	own, main := refOf("feature"), refOf("main")
	unchecked := func(ref string) registry.Ref { return registry.Ref{Ref: ref, Kind: registry.Cache} } // blobs not checked yet
	for _, tc := range []struct {
		name    string
		refs    map[string]registry.Ref
		lost    map[string][]string
		imports []string
		warn    string
	}{
		{"own cache first", map[string]registry.Ref{own: cache(own), main: cache(main)}, nil, []string{own}, ""},
		{"falls back to main", map[string]registry.Ref{main: cache(main)}, nil, []string{main}, ""},
		{"an image on the branch's cache tag is skipped with a warning",
			map[string]registry.Ref{own: {Ref: own, Kind: registry.NotCache}, main: cache(main)}, nil, []string{main}, "not a BuildKit cache"},
		{"a cache whose blobs the registry lost is skipped with a warning, the next one checked",
			map[string]registry.Ref{own: unchecked(own), main: unchecked(main)}, map[string][]string{own: {"sha256:l1"}}, []string{main}, "damaged: the registry lacks 1 of its blobs (sha256:l1)"},
		{"a legacy cache index is imported, with a warning",
			map[string]registry.Ref{own: {Ref: own, Kind: registry.LegacyCache}, main: cache(main)}, nil, []string{own}, "::warning::cache ref " + own + ": imported"},
		{"a ref that could not be checked is imported, with the next cache behind it",
			map[string]registry.Ref{own: {Ref: own, Err: errors.New("403 DENIED")}, main: cache(main)}, nil, []string{own, main}, "could not be checked, imported anyway"},
		{"a stuck extra host is not imported",
			map[string]registry.Ref{"stuck.test/app:cache": {Ref: "stuck.test/app:cache", Err: context.DeadlineExceeded, Unreachable: true}},
			nil, nil, "did not answer in time"},
		{"nothing: cold, with a warning", nil, nil, nil, "no cache found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, out, _ := testRunner(t, &fakeSolver{}, &fakeRegistry{refs: tc.refs, lost: tc.lost}, true)
			r.with(func(c *config.Config) { c.CacheFrom = []string{"stuck.test/app:cache"} })
			plan, err := r.plan(context.Background(), target{host: "registry.test"}, decided(t, r))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(plan.imports, tc.imports) || plan.Export != own {
				t.Errorf("imports %q export %q; want %q and %q", plan.imports, plan.Export, tc.imports, own)
			}
			if tc.warn != "" && !strings.Contains(out.String(), "::warning::") || !strings.Contains(out.String(), tc.warn) {
				t.Errorf("log lacks a warning with %q:\n%s", tc.warn, out)
			}
		})
	}
}

// A registry that answered no probe stops a run that pushes before it builds
// (BuildKit would wait forever); without a push the build goes on, exporting
// no cache.
func TestStuckRegistry(t *testing.T) {
	t.Parallel()
	own, main := refOf("feature"), refOf("main")
	stuck := map[string]registry.Ref{
		own:  {Ref: own, Err: context.DeadlineExceeded, Unreachable: true},
		main: {Ref: main, Err: context.DeadlineExceeded, Unreachable: true},
	}
	for _, push := range []bool{true, false} {
		r, out, _ := testRunner(t, &fakeSolver{}, &fakeRegistry{refs: stuck}, push)
		plan, err := r.plan(context.Background(), target{host: "registry.test"}, decided(t, r))
		switch {
		case push && (err == nil || !strings.Contains(err.Error(), "registry registry.test did not answer within 30s, so the image cannot be pushed")):
			t.Errorf("push: plan error %v; want the stuck registry named", err)
		case !push && (err != nil || plan.Export != "" || !strings.Contains(out.String(), "::warning::registry registry.test did not answer within 30s: the cache is not exported to "+own)):
			t.Errorf("no push: error %v, export %q; want the build to go on without export, with a warning:\n%s", err, plan.Export, out)
		}
	}
}

func TestDecideExport(t *testing.T) {
	t.Parallel()
	own, main := refOf("feature"), refOf("main")
	all, some := &solve.Result{Steps: []solve.Step{{Cached: true}, {Cached: true}}}, &solve.Result{Steps: []solve.Step{{Cached: true}, {}}}
	plan := func(export string, imports []string, probed ...registry.Ref) cachePlan {
		return cachePlan{Plan: cacheref.Plan{Export: export}, imports: imports, probed: probed}
	}
	for _, tc := range []struct {
		name string
		plan cachePlan
		res  *solve.Result
		want exportKind
	}{
		{"no export planned", plan("", []string{main}, cache(main)), all, exportNone},
		{"all from its own cache: kept", plan(own, []string{own}, cache(own)), all, exportKeep},
		{"all from main: tagged", plan(own, []string{main}, registry.Ref{Ref: own}, cache(main)), all, exportTag},
		{"a step ran: exported", plan(own, []string{own}, cache(own)), some, exportSolve},
		{"no steps at all: exported", plan(own, []string{own}, cache(own)), &solve.Result{}, exportSolve},
		{"import unchecked: exported", plan(own, []string{own}, registry.Ref{Ref: own, Err: errors.New("denied")}), all, exportSolve},
		{"legacy cache: rewritten", plan(own, []string{own}, registry.Ref{Ref: own, Kind: registry.LegacyCache}), all, exportSolve},
		{"blobs not checked: rewritten", plan(own, []string{own}, registry.Ref{Ref: own, Kind: registry.Cache}), all, exportSolve},
		{"main's blobs not checked: exported", plan(own, []string{main}, registry.Ref{Ref: own}, registry.Ref{Ref: main, Kind: registry.Cache}), all, exportSolve},
	} {
		b := built{req: solve.Request{CacheImports: tc.plan.imports}, res: tc.res}
		if got := decideExport(tc.plan, b).kind; got != tc.want {
			t.Errorf("%s: decideExport = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A new branch whose every step came from main's cache gets its tag by one
// manifest PUT and no export solve (the build pushes in its one solve); if the
// tag fails, it exports in a solve of its own.
func TestNewBranchTagsMainsCacheInsteadOfExporting(t *testing.T) {
	t.Parallel()
	own, main := refOf("feature"), refOf("main")
	for _, tagErr := range []error{nil, errors.New("tag refused")} {
		s := &fakeSolver{cached: []bool{true, true, true}}
		reg := &fakeRegistry{refs: map[string]registry.Ref{main: warm(t, main, "l1", "l2")}, tagErr: tagErr,
			layers: map[string]map[string]bool{"registry.test/app:latest": {"l1": true, "l2": true}}}
		r, _, env := testRunner(t, s, reg, true)
		exp := runPhases(t, r)
		o := outputs(t, env)
		wantSolves, wantKind, wantFallbacks := 1, exportTag, ""
		if tagErr != nil {
			wantSolves, wantKind, wantFallbacks = 2, exportSolve, fallbackExportSolve
		} else if !slices.Equal(reg.tagged, []string{main + " -> " + own}) {
			t.Errorf("tagged %q; want main's cache tagged as the branch's", reg.tagged)
		}
		if len(s.calls) != wantSolves || exp.decision.kind != wantKind || s.calls[0].Exports[0].Attrs["push"] != "true" || len(s.calls[0].CacheExports) != 0 {
			t.Errorf("tag error %v: %d solves, export %v; want %d, %v, the first pushing without a cache export", tagErr, len(s.calls), exp.decision.kind, wantSolves, wantKind)
		}
		if o["fallbacks"] != wantFallbacks {
			t.Errorf("tag error %v: fallbacks %q, want %q", tagErr, o["fallbacks"], wantFallbacks)
		}
		if o["cache-hit-ref"] != main || o["cached-steps"] != "3" || o["total-steps"] != "3" || o["pushed"] != "true" || o["digest"] == "" {
			t.Errorf("outputs %v; want main's cache serving 3/3 and the pushed digest", o)
		}
	}
}

// A failed cache export (BuildKit reports it on the export vertex under
// ignore-error=true) is a warning; the outputs say the image was pushed.
func TestFailedExportIsAWarning(t *testing.T) {
	t.Parallel()
	s := &fakeSolver{cached: []bool{false, false}, exportErr: "failed to push: 400 Bad Request"}
	r, out, env := testRunner(t, s, &fakeRegistry{}, true)
	exp := runPhases(t, r)
	if exp.Err == nil || exp.Err.Kind != solve.ExportFailed || !strings.Contains(exp.Err.Msg, "400 Bad Request") {
		t.Fatalf("export error %+v; want the vertex's error as ExportFailed", exp.Err)
	}
	if !strings.Contains(out.String(), "::warning::cache not saved to "+refOf("feature")+" (the image is fine)") {
		t.Errorf("no warning:\n%s", out)
	}
	if o := outputs(t, env); o["pushed"] != "true" || o["digest"] == "" || o["cache-hit-ref"] != "" {
		t.Errorf("outputs %v", o)
	}
}

// push: false reports no image or digest (nothing was pushed), and a cold build
// names no cache as having served it.
func TestUnpushedImageHasNoDigestOutput(t *testing.T) {
	t.Parallel()
	own := refOf("feature")
	s := &fakeSolver{cached: []bool{false, false}}
	reg := &fakeRegistry{refs: map[string]registry.Ref{own: warm(t, own, "l1")}, layers: map[string]map[string]bool{own: {"l1": true}}}
	r, _, env := testRunner(t, s, reg, false)
	runPhases(t, r)
	o := outputs(t, env)
	if o["pushed"] != "false" || o["digest"] != "" || o["image"] != "" || o["cache-hit-ref"] != "" {
		t.Errorf("outputs %v; want pushed=false, no digest, image or hit ref", o)
	}
	if len(s.calls) != 2 || len(s.calls[0].Exports) != 1 || s.calls[0].Exports[0].Attrs["push"] != "false" {
		t.Errorf("solves %d; want a build that does not push, then the export", len(s.calls))
	}
}

// A push-by-digest build names the repository alone for the exporter, reports
// the image by digest and its platform, and stages it under the workflow
// run's tag for the merge step.
func TestPushByDigestReportsAndStagesTheImage(t *testing.T) {
	t.Parallel()
	s := &fakeSolver{cached: []bool{false}}
	reg := &fakeRegistry{}
	r, _, env := testRunner(t, s, reg, true)
	r.with(func(c *config.Config) { c.Tags, c.PushByDigest, c.Platforms = nil, true, []string{"linux/arm64"} })
	r.platform = "linux/arm64"
	env["GITHUB_RUN_ID"], env["GITHUB_RUN_ATTEMPT"] = "7", "2"
	runPhases(t, r)
	attrs := s.calls[0].Exports[0].Attrs // one solve builds and pushes
	if attrs["name"] != repo || attrs["push"] != "true" || attrs["push-by-digest"] != "true" || attrs["name-canonical"] != "true" {
		t.Errorf("image exporter attributes %q; want the repository pushed by digest", attrs)
	}
	digest := "sha256:" + strings.Repeat("a", 64)
	o := outputs(t, env)
	if o["image"] != repo+"@"+digest || o["digest"] != digest || o["platform"] != "linux/arm64" || o["pushed"] != "true" {
		t.Errorf("outputs %v", o)
	}
	stage := repo + ":" + cacheref.Tag(cacheref.DefaultPrefix, cacheref.Key{Kind: "stage", Name: "7-2"}, "", "linux/arm64")
	if want := []string{repo + "@" + digest + " as " + stage + " (linux/arm64)"}; !slices.Equal(reg.staged, want) {
		t.Errorf("staged %q, want %q", reg.staged, want)
	}
	if !strings.HasPrefix(stage, repo+":cache-stage-7-2-linux-arm64-") {
		t.Errorf("staging tag %s does not read as the run's", stage)
	}
}

// fakeWorkers answers ListWorkers with one worker of the given platforms.
type fakeWorkers struct {
	platforms []ocispecs.Platform
	err       error
}

func (f fakeWorkers) ListWorkers(context.Context, ...client.ListWorkersOption) ([]*client.WorkerInfo, error) {
	return []*client.WorkerInfo{{Platforms: f.platforms}}, f.err
}

// Only a push-by-digest build keys its cache on the builder's own platform
// when no platforms are given; it cannot go on without knowing it.
func TestBuilderPlatformKeysOnlyPushByDigestCaches(t *testing.T) {
	t.Parallel()
	arm := fakeWorkers{platforms: []ocispecs.Platform{{OS: "linux", Architecture: "arm64", Variant: "v8"}, {OS: "linux", Architecture: "amd64"}}}
	broken := fakeWorkers{err: errors.New("unavailable")}
	for _, tc := range []struct {
		name         string
		pushByDigest bool
		platforms    []string
		workers      fakeWorkers
		want, err    string
		exportTag    string
	}{
		{"push-by-digest: the builder's platform", true, nil, arm, "linux/arm64", "", "cache-feature-linux-arm64-"},
		{"other builds keep their key", false, nil, arm, "linux/arm64", "", "cache-feature-"},
		{"the input wins", true, []string{"linux/386"}, arm, "linux/386", "", "cache-feature-linux-386-"},
		{"several", false, []string{"linux/amd64", "linux/arm64/v8"}, arm, "linux/amd64,linux/arm64", "", "cache-feature-"},
		{"unknown: push-by-digest fails", true, nil, broken, "", "set the platforms input", ""},
		{"unknown: other builds go on", false, nil, broken, "", "", "cache-feature-"},
	} {
		r, _, _ := testRunner(t, &fakeSolver{}, &fakeRegistry{}, true)
		r.with(func(c *config.Config) { c.PushByDigest, c.Platforms = tc.pushByDigest, tc.platforms })
		got, policy, err := targetPlatform(context.Background(), r.a, r.image, r.inputs, tc.workers, decided(t, r))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
			continue
		}
		plan, err := policy.Plan(repo)
		if err != nil {
			t.Fatal(err)
		}
		// The tag without a platform is the branch's slug and hash alone.
		if rest, ok := strings.CutPrefix(plan.ExportTag, tc.exportTag); !ok || (tc.exportTag == "cache-feature-" && len(rest) != 16) {
			t.Errorf("%s: export tag %q, want %s...", tc.name, plan.ExportTag, tc.exportTag)
		}
	}
}
