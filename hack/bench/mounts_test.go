package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The cache mounts study renders a number where one is due and judges the
// partial rebuild's gain.
func TestMountsRender(t *testing.T) {
	r := &mountsResults{runs: 2, samples: map[key][]sample{}, uploaded: map[key][]int64{}, artifact: 23e6, contents: 95e6, goVer: "go1.26.8"}
	s := func(sec float64, cached int) sample {
		return sample{took: time.Duration(sec * float64(time.Second)), cached: cached, total: 4, traffic: traffic{requests: 20, getBytes: 5e6}}
	}
	for _, tool := range mountTools {
		r.samples[key{"gobuild", "cold", tool}] = []sample{s(60, 0)}
		r.samples[key{"gobuild", "warm", tool}] = []sample{s(1, 4)}
		partial := 60.0
		if tool == toolMounts {
			partial = 5
		}
		r.samples[key{"gobuild", "partial", tool}] = []sample{s(partial, 3), s(partial+1, 3)}
		r.uploaded[key{"gobuild", "partial", tool}] = []int64{20e6, 22e6}
	}
	out := r.render()
	for _, want := range []string{"PASS  partial rebuild with cache mounts <= 50% of without", "5.50s with cache mounts, 60.50s without (buildctl 60.50s): 55.00s saved", "21.0 MB of mounts uploaded"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "NaN") {
		t.Errorf("report shows NaN:\n%s", out)
	}
}

// A study run alone (-only mounts, -only daemon) replaces its own section of
// the report, wherever it is, and keeps the rest; a missing one is added.
func TestSpliceSection(t *testing.T) {
	const (
		head    = "# Benchmarks\n\nmain study\n"
		mounts  = "\n## Cache mounts\n\nold mounts\n"
		daemon  = "\n## Default BuildKit container\n\nold daemon\n"
		mounts2 = "\n## Cache mounts\n\nnew mounts\n"
		daemon2 = "\n## Default BuildKit container\n\nnew daemon\n"
	)
	for name, c := range map[string]struct{ doc, heading, section, want string }{
		"mounts before daemon": {head + mounts + daemon, mountsHeading, mounts2, head + mounts2 + daemon},
		"daemon last":          {head + mounts + daemon, daemonHeading, daemon2, head + mounts + daemon2},
		"daemon not there yet": {head + mounts, daemonHeading, daemon2, head + mounts + daemon2},
	} {
		path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
		if err := os.WriteFile(path, []byte(c.doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := spliceSection(path, c.heading, c.section); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != c.want {
			t.Errorf("%s: report:\n%q\nwant\n%q", name, b, c.want)
		}
	}
}

// The default container study shows its medians and the per-job difference.
func TestDaemonRender(t *testing.T) {
	r := &daemonResults{runs: 3, start: []float64{1.2, 1.0, 3}, connect: []float64{0.1, 0.1, 0.2}, stop: []float64{0.3, 0.4, 0.5},
		jobContainer: []float64{2.5, 2.0, 9}, jobDaemon: []float64{0.9, 1.0, 1.1}, imported: 2, imageSize: 129e6}
	out := r.render()
	for _, want := range []string{"129.0 MB", "1.20s", "400ms", "2.50s starting the container, 1.00s on a running buildkitd: 1.50s more per job"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
