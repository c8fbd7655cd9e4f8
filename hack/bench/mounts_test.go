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

// -only mounts replaces its own section of the report and keeps the rest.
func TestSpliceMounts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := os.WriteFile(path, []byte("# Benchmarks\n\nmain study\n\n## Cache mounts\n\nold figures\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := spliceMounts(path, "\n## Cache mounts\n\nnew figures\n"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "# Benchmarks\n\nmain study\n\n## Cache mounts\n\nnew figures\n"; got != want {
		t.Errorf("report:\n%q\nwant\n%q", got, want)
	}
}
