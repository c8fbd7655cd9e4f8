package run

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/ecr-build-cache/ecr-build-cache/internal/config"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
)

// committed makes the runner's context a git work tree with its files
// committed, as actions/checkout leaves it.
func committed(t *testing.T, r *testRun) {
	t.Helper()
	for _, args := range [][]string{
		{"-c", "init.defaultBranch=main", "init", "-q"},
		{"add", "-A"},
		{"-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "-m", "c"},
	} {
		if out, err := exec.Command("git", append([]string{"-C", r.inputs.Context}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
}

// inputsOf is the fingerprint a cold run with these inputs marks its cache
// with: its context a git checkout or a plain directory.
func inputsOf(t *testing.T, git bool) string {
	t.Helper()
	reg := &fakeRegistry{}
	r, _, _ := testRunner(t, &fakeSolver{cached: []bool{false}}, reg, true)
	if git {
		committed(t, r)
	}
	runPhases(t, r)
	want := refOf("feature") + " sha256:"
	if len(reg.annotated) != 1 || !strings.HasPrefix(reg.annotated[0], want) {
		t.Fatalf("the cold run (git %v) marked %q; want %s...", git, reg.annotated, want)
	}
	return strings.TrimPrefix(reg.annotated[0], refOf("feature")+" ")
}

// One solve builds, pushes and exports unless the inputs say every step will
// come from the one cache imported; a wrong guess costs an export solve.
func TestOneSolveUnlessEveryStepIsExpectedCached(t *testing.T) {
	t.Parallel()
	own := refOf("feature")
	fp, plain := inputsOf(t, true), inputsOf(t, false)
	if fp == plain {
		t.Fatalf("a git checkout and a plain directory of the same files share the fingerprint %s", fp)
	}
	marked := func(inputs string) registry.Ref {
		c := cache(own, "l1")
		c.Annotations = map[string]string{registry.InputsAnnotation: inputs}
		return c
	}
	for _, tc := range []struct {
		name          string
		git           bool
		probed        []registry.Ref
		cached        []bool
		solves        int
		exportInBuild bool
		outcome       string
		fallbacks     string
	}{
		{"cold: one solve", true, nil, []bool{false, false}, 1, true, "exported", ""},
		{"same inputs, all cached: one solve, kept", true, []registry.Ref{marked(fp)}, []bool{true, true}, 1, false, "kept", ""},
		{"other inputs: one solve", true, []registry.Ref{marked("sha256:other")}, []bool{true, false}, 1, true, "exported", ""},
		{"unmarked cache: one solve", true, []registry.Ref{cache(own, "l1")}, []bool{true, false}, 1, true, "exported", ""},
		{"same inputs, a step ran: export solve", true, []registry.Ref{marked(fp)}, []bool{true, false}, 2, false, "exported", fallbackExportSolve},
		// Outside git the files' content is the fingerprint.
		{"no git, same files, all cached: one solve, kept", false, []registry.Ref{marked(plain)}, []bool{true, true}, 1, false, "kept", ""},
		{"no git, unmarked cache: one solve", false, []registry.Ref{cache(own, "l1")}, []bool{true, false}, 1, true, "exported", ""},
		{"no git, other files: one solve", false, []registry.Ref{marked(fp)}, []bool{true, false}, 1, true, "exported", ""},
		{"no git, same files, a step ran: export solve", false, []registry.Ref{marked(plain)}, []bool{true, false}, 2, false, "exported", fallbackExportSolve},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &fakeSolver{cached: tc.cached}
			reg := &fakeRegistry{refs: map[string]registry.Ref{}}
			for _, p := range tc.probed {
				reg.refs[p.Ref] = p
			}
			r, _, env := testRunner(t, s, reg, true)
			if tc.git {
				committed(t, r)
			}
			runPhases(t, r)
			o := outputs(t, env)
			if len(s.calls) != tc.solves || (len(s.calls[0].CacheExports) == 1) != tc.exportInBuild || s.calls[0].Exports[0].Attrs["push"] != "true" {
				t.Errorf("%d solves, the first exporting %v; want %d, %v, the first pushing", len(s.calls), len(s.calls[0].CacheExports) == 1, tc.solves, tc.exportInBuild)
			}
			if last := s.calls[len(s.calls)-1]; tc.solves == 2 && (len(last.CacheExports) != 1 || last.CacheExports[0].Attrs["ref"] != own || len(last.Exports) != 0) {
				t.Errorf("the export solve exports %v and %d images; want the cache to %s alone", last.CacheExports, len(last.Exports), own)
			}
			if o["cache-export"] != tc.outcome || o["fallbacks"] != tc.fallbacks || o["pushed"] != "true" || o["digest"] != fakeDigest {
				t.Errorf("outputs %v; want cache-export %q, fallbacks %q, the image pushed", o, tc.outcome, tc.fallbacks)
			}
			wantMarks, mark := 0, fp
			if tc.outcome == "exported" {
				wantMarks = 1
			}
			if !tc.git {
				mark = plain
			}
			if len(reg.annotated) != wantMarks || (wantMarks == 1 && reg.annotated[0] != own+" "+mark) {
				t.Errorf("marked %q; want %d mark with %s", reg.annotated, wantMarks, mark)
			}
		})
	}
}

// A push the registry throttles or loses to a concurrent upload, inside the
// one solve, is pushed again alone, and the cache (stopped with it) exported
// after; a push the registry denies fails the run at once.
func TestFailedPushInTheOneSolve(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, err string
		solves    int
		fallbacks string
	}{
		{"throttled", "failed to push registry.test/app:latest: toomanyrequests: retry later", 3, "image-retry,export-solve"},
		{"upload race", "failed to push registry.test/app:latest: blob upload invalid: digest mismatch", 3, "image-retry,export-solve"},
		{"denied", "failed to push registry.test/app:latest: denied: no", 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &fakeSolver{cached: []bool{false}, pushErrs: []string{tc.err}}
			r, out, env := testRunner(t, s, &fakeRegistry{}, true)
			plan := planned(t, r)
			b, err := r.build(t.Context(), plan)
			if len(s.calls) == 0 || len(s.calls[0].CacheExports) != 1 {
				t.Fatalf("the first solve did not export the cache")
			}
			if tc.fallbacks == "" {
				if err == nil || !strings.Contains(err.Error(), "push registry.test/app:latest: "+tc.err) || len(s.calls) != tc.solves {
					t.Fatalf("error %v after %d solves; want the push's, after %d", err, len(s.calls), tc.solves)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			finish(t, r, plan, b)
			o := outputs(t, env)
			if len(s.calls) != tc.solves || o["fallbacks"] != tc.fallbacks || o["cache-export"] != "exported" || o["digest"] != fakeDigest {
				t.Errorf("%d solves, outputs %v; want %d solves, fallbacks %q, exported", len(s.calls), o, tc.solves, tc.fallbacks)
			}
			if push := s.calls[1]; push.Exports[0].Attrs["push"] != "true" || len(push.CacheExports) != 0 {
				t.Errorf("the second solve was not the image alone: %+v", push)
			}
		})
	}
}

// A cache export that outlasts cache-export-timeout stops the one solve; the
// image counts as pushed only when the registry has it, else it is pushed
// alone.
func TestExportTimeoutInTheOneSolve(t *testing.T) {
	t.Parallel()
	image := repo + ":latest"
	for _, tc := range []struct {
		name       string
		afterPush  bool
		registered string // the digest the registry has under the image's tag
		solves     int
		fallbacks  string
	}{
		{"image in: one solve", true, fakeDigest, 1, ""},
		{"progress says pushed, registry disagrees", true, "sha256:other", 2, fallbackImageAfterTimeout},
		{"stopped before the image", false, "", 2, fallbackImageAfterTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &fakeSolver{cached: []bool{false}, hangExport: true, hangAfterPush: tc.afterPush}
			reg := &fakeRegistry{digests: map[string]string{image: tc.registered}}
			r, out, env := testRunner(t, s, reg, true)
			r.with(func(c *config.Config) { c.CacheExportTimeout = 100 * time.Millisecond })
			exp := runPhases(t, r)
			o := outputs(t, env)
			if len(s.calls) != tc.solves || o["fallbacks"] != tc.fallbacks || o["cache-export"] != "timed-out" || o["digest"] != fakeDigest || o["pushed"] != "true" {
				t.Errorf("%d solves, outputs %v; want %d, fallbacks %q, timed-out, the image pushed", len(s.calls), o, tc.solves, tc.fallbacks)
			}
			if !strings.Contains(out.String(), "::warning::cache not saved to "+refOf("feature")+" (the image is fine): the cache export did not finish within 100ms") {
				t.Errorf("no warning:\n%s", out)
			}
			if tc.solves == 2 && (len(s.calls[1].CacheExports) != 0 || !slices.ContainsFunc(s.calls[1].Exports, func(e client.ExportEntry) bool { return e.Attrs["push"] == "true" })) {
				t.Errorf("the second solve was not the image alone")
			}
			if exp.Export.Err == nil {
				t.Error("no export error")
			}
		})
	}
}

// A cache export that lost an upload race to the image push in the one solve
// is exported alone; other export failures stay warnings.
func TestExportThatLostAnUploadRaceIsExportedAlone(t *testing.T) {
	t.Parallel()
	s := &fakeSolver{cached: []bool{false}, exportErr: "error writing layer blob: unknown: provided digest did not match uploaded content"}
	r, out, env := testRunner(t, s, &fakeRegistry{}, true)
	plan := planned(t, r)
	b, err := r.build(t.Context(), plan)
	if err != nil {
		t.Fatal(err)
	}
	s.exportErr = "" // the race is over
	finish(t, r, plan, b)
	o := outputs(t, env)
	if len(s.calls) != 2 || len(s.calls[1].CacheExports) != 1 || len(s.calls[1].Exports) != 0 || o["cache-export"] != "exported" || o["fallbacks"] != fallbackExportSolve {
		t.Errorf("%d solves, outputs %v; want the one solve, then the cache alone, exported", len(s.calls), o)
	}
	if strings.Contains(out.String(), "::warning::cache not saved") {
		t.Errorf("a warning for an export that was saved:\n%s", out)
	}
}
