package run

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/config"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
)

// withSummary points the run's GITHUB_STEP_SUMMARY at a file and returns a
// reader of it.
func withSummary(t *testing.T, env map[string]string) func() string {
	path := filepath.Join(t.TempDir(), "summary.md")
	env["GITHUB_STEP_SUMMARY"] = path
	return func() string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
}

// A build served by a cache that recorded its steps' times says what the cache
// saved, in the summary and the cache-saved-seconds output; the cached steps
// are collapsed below the steps that ran, slowest first; and the cache it
// writes carries the times on, for the next build.
func TestSummaryAndOutputsSayWhatTheCacheSaved(t *testing.T) {
	t.Parallel()
	names := []string{"[1/4] RUN go mod download", "[2/4] RUN make `|` </details>", "[3/4] COPY . /src", "[4/4] RUN go test"}
	main := refOf("main")
	recorded := cache(main)
	recorded.Annotations = map[string]string{solve.StepsAnnotation: solve.EncodeTimes(map[string]time.Duration{
		solve.StepKey(names[0]): 42 * time.Second, solve.StepKey(names[1]): 3500 * time.Millisecond,
		solve.StepKey(names[2]): 0, solve.StepKey(names[3]): 20 * time.Second,
	})}
	s := &fakeSolver{cached: []bool{true, true, true, false}, names: names, took: 1500 * time.Millisecond}
	reg := &fakeRegistry{refs: map[string]registry.Ref{main: recorded}}
	r, _, env := testRunner(t, s, reg, true)
	sum := withSummary(t, env)
	runPhases(t, r)

	o := outputs(t, env)
	if o["cache-saved-seconds"] != "46" || o["registry"] != "registry.test" || o["cached-steps"] != "3" {
		t.Errorf("outputs cache-saved-seconds %q registry %q cached-steps %q; want 46 (42 s + 3.5 s), registry.test, 3", o["cache-saved-seconds"], o["registry"], o["cached-steps"])
	}
	got := sum()
	for _, want := range []string{
		"| Cached steps | 3/4: cache saved about 46 s |\n",
		"| Build time | ",
		"| Push | ",
		"\n| Step that ran | Seconds |\n|---|---|\n| `[4/4] RUN go test` | 1.50 |\n",
		// The COPY's time was under the record's tenth of a second.
		"\n<details><summary>3 cached steps: saved about 46 s</summary>\n\n| Cached step | Seconds when it last ran |\n|---|---|\n" +
			"| `[1/4] RUN go mod download` | 42.00 |\n| ``[2/4] RUN make `\\|` </details>`` | 3.50 |\n| `[3/4] COPY . /src` | under 0.1 |\n\n</details>\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Cold build") {
		t.Errorf("a warm build says it was cold:\n%s", got)
	}

	// The cache written carries this build's times for the steps that ran
	// and main's record for those that came from it.
	if len(reg.sets) != 1 {
		t.Fatalf("annotated %d times; want once", len(reg.sets))
	}
	times := solve.DecodeTimes(reg.sets[0][solve.StepsAnnotation])
	for i, want := range []time.Duration{42 * time.Second, 3500 * time.Millisecond, 0, 1500 * time.Millisecond} {
		if times[solve.StepKey(names[i])] != want {
			t.Errorf("recorded %s: %v, want %v (all: %v)", names[i], times[solve.StepKey(names[i])], want, times)
		}
	}
}

// A cache written before step times were recorded saves an unknown time: the
// summary says so rather than "0 s".
func TestSummaryWithoutRecordedTimes(t *testing.T) {
	t.Parallel()
	main := refOf("main")
	s := &fakeSolver{cached: []bool{true, false}}
	r, _, env := testRunner(t, s, &fakeRegistry{refs: map[string]registry.Ref{main: cache(main)}}, false)
	sum := withSummary(t, env)
	runPhases(t, r)
	got := sum()
	if o := outputs(t, env); o["cache-saved-seconds"] != "0" || o["registry"] != "" {
		t.Errorf("cache-saved-seconds %q registry %q; want 0 and none (nothing pushed)", o["cache-saved-seconds"], o["registry"])
	}
	for _, want := range []string{"| Cached steps | 1/2 |\n", "<details><summary>1 cached step</summary>", "| `[1/2] RUN step 0` | unknown |"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
}

// A cold build says why it was cold.
func TestSummaryAndReportSayWhyABuildWasCold(t *testing.T) {
	t.Parallel()
	main := refOf("main")
	fork := payload(t, "pull_request_fork.json")
	for _, tc := range []struct {
		name string
		refs map[string]registry.Ref
		set  func(r *testRun)
		want string
	}{
		{"damaged cache", map[string]registry.Ref{main: cache(main)}, func(r *testRun) { r.solver.(*fakeSolver).failWithCache = "failed to compute cache key: blob not found" },
			"| Cold build | damaged cache: the build failed with " + main + " and ran again without it |"},
		{"no cache yet", nil, nil, "| Cold build | no cache yet: none of " + refOf("feature") + ", " + main + " exists"},
		{"no-cache", map[string]registry.Ref{main: cache(main)}, func(r *testRun) { r.with(func(c *config.Config) { c.NoCache = true }) }, "| Cold build | no-cache: true runs every step |"},
		{"nothing matched", map[string]registry.Ref{main: cache(main)}, nil, "| Cold build | no step matched the imported cache"},
		{"fork without credentials", nil, func(r *testRun) {
			r.host = ""
			r.with(func(c *config.Config) {
				c.Event = cacheref.Event{Name: "pull_request", Ref: "refs/pull/43/merge", HeadRef: "patch-1", BaseRef: "main", Payload: fork}
			})
		}, "| Cold build | pull request from a fork"},
	} {
		r, out, env := testRunner(t, &fakeSolver{cached: []bool{false, false}}, &fakeRegistry{refs: tc.refs}, false)
		if tc.set != nil {
			tc.set(r)
		}
		sum := withSummary(t, env)
		runPhases(t, r)
		if got := sum(); !strings.Contains(got, tc.want) {
			t.Errorf("%s: summary lacks %q:\n%s", tc.name, tc.want, got)
		}
		if !strings.Contains(out.String(), "cold build: ") {
			t.Errorf("%s: the log does not say why the build was cold:\n%s", tc.name, out)
		}
	}
}

// cache-mounts given but no mount kept: the row and the output say so; no
// input, no row.
func TestReportCacheMountsNotKept(t *testing.T) {
	t.Parallel()
	for _, mounts := range [][]string{nil, {"auto"}} {
		r, _, env := testRunner(t, &fakeSolver{cached: []bool{false}}, &fakeRegistry{}, false)
		r.with(func(c *config.Config) { c.CacheMounts = mounts })
		sum := withSummary(t, env)
		runPhases(t, r)
		o, got := outputs(t, env), sum()
		if mounts == nil && (o["cache-mounts"] != "" || strings.Contains(got, "Cache mounts")) {
			t.Errorf("no cache-mounts input: output %q, summary:\n%s", o["cache-mounts"], got)
		}
		if mounts != nil && (o["cache-mounts"] != "none" || !strings.Contains(got, "| Cache mounts | not saved by this run")) {
			t.Errorf("cache-mounts auto, none kept: output %q, summary:\n%s", o["cache-mounts"], got)
		}
	}
}
