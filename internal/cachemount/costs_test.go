package cachemount

import (
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
)

// A mount is skipped when its last seeding took longer than its steps saved,
// and only when all three are measured.
func TestCostRule(t *testing.T) {
	t.Parallel()
	s := time.Second
	for _, tc := range []struct {
		c    costs
		skip bool
	}{
		{costs{transfer: 2 * s, seeded: 1 * s, empty: 60 * s}, false}, // a compiler cache
		{costs{transfer: 9 * s, seeded: 8 * s, empty: 10 * s}, true},  // a large download cache over a fast network
		{costs{transfer: 1 * s, seeded: 5 * s, empty: 4 * s}, true},   // no gain at all
		{costs{transfer: 9 * s, seeded: 8 * s}, false},                // never measured empty
		{costs{seeded: 8 * s, empty: 10 * s}, false},                  // never seeded
		{costs{}, false},
	} {
		if got := tc.c.notWorthIt(); got != tc.skip {
			t.Errorf("%s: skip = %v, want %v", tc.c, got, tc.skip)
		}
	}
}

// The annotations round-trip; a new layer takes every measured value, an
// unchanged one only those it lacks (so it stays the same once measured).
func TestCostAnnotations(t *testing.T) {
	t.Parallel()
	l := v1.Descriptor{Annotations: map[string]string{AnnotationKey: "/go", AnnotationEmpty: "60000"}}
	now := costs{transfer: 1500 * time.Millisecond, seeded: 2 * time.Second, empty: 50 * time.Second}
	if got, want := costsOf(now.record(l, true)), (costs{transfer: 1500 * time.Millisecond, seeded: 2 * time.Second, empty: time.Minute}); got != want {
		t.Errorf("fill: %s, want %s", got, want)
	}
	if got := costsOf(now.record(l, false)); got != now {
		t.Errorf("new layer: %s, want %s", got, now)
	}
	if l.Annotations[AnnotationTransfer] != "" {
		t.Error("record changed the layer it was given")
	}
	if got, want := costsOf(l).over(costs{seeded: time.Second}), (costs{seeded: time.Second, empty: time.Minute}); got != want {
		t.Errorf("over: %s, want %s", got, want)
	}
	if got := costsOf(v1.Descriptor{Annotations: map[string]string{AnnotationTransfer: "-5", AnnotationSeeded: "x"}}); got != (costs{}) {
		t.Errorf("bad values: %s, want none", got)
	}
}

// A step uses a mount when its RUN names it by target, and by id when the
// mount has one; cached and failed steps do not count.
func TestStepsUsing(t *testing.T) {
	t.Parallel()
	byTarget := Mount{ID: "//root/.cache/go-build", Name: "/root/.cache/go-build", Target: "/root/.cache/go-build"}
	byID := Mount{ID: "/gomod", Name: "gomod", Target: "/go/pkg/mod"}
	steps := []solve.Step{
		{Name: "[build 4/6] RUN --mount=type=cache,id=gomod,target=/go/pkg/mod go mod download", Duration: 3 * time.Second},
		{Name: "[build 6/6] RUN --mount=type=cache,id=gomod,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build go build ./...", Duration: 20 * time.Second},
		{Name: "[linux/arm64 build 6/6] RUN --mount=type=cache,target=/root/.cache/go-build go build ./...", Duration: 30 * time.Second, Cached: true},
		{Name: "[build 5/6] RUN --mount=type=cache,target=/go/pkg/mod go vet ./...", Duration: 7 * time.Second}, // another cache: its id is the target
		{Name: "[build 3/6] RUN --mount=type=cache,target=/root/.cache/go-build false", Duration: time.Second, Error: "exit code: 1"},
		{Name: "[build 2/6] COPY . .", Duration: time.Second},
	}
	if got := stepsUsing(byTarget, steps); got != 20*time.Second {
		t.Errorf("by target: %s, want 20s", got)
	}
	if got := stepsUsing(byID, steps); got != 23*time.Second {
		t.Errorf("by id: %s, want 23s", got)
	}
}
