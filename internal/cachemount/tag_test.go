package cachemount

import (
	"os"
	"slices"
	"testing"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
)

// The mounts follow the layer cache's keys: the same reads in the same
// order, the run's own key written only by a trusted run.
func TestRefs(t *testing.T) {
	t.Parallel()
	const repo = "registry.example/app"
	push := cacheref.Event{Name: "push", Ref: "refs/heads/feature/x", Payload: []byte(`{"repository":{"default_branch":"main"}}`)}
	fork, err := os.ReadFile("../cacheref/testdata/pull_request_fork.json")
	if err != nil {
		t.Fatal(err)
	}
	forkPR := cacheref.Event{Name: "pull_request", Ref: "refs/pull/43/merge", Payload: fork}
	squash, err := os.ReadFile("../cacheref/testdata/push_main_squash.json")
	if err != nil {
		t.Fatal(err)
	}
	merge := cacheref.Event{Name: "push", Ref: "refs/heads/main", Payload: squash}
	tag := func(branch string) string {
		return repo + ":" + cacheref.MountsTag("cache", cacheref.BranchKey(branch), "", "")
	}
	for _, tc := range []struct {
		name    string
		ev      cacheref.Event
		imports []string
		export  string
	}{
		{"push to a branch", push, []string{tag("feature/x"), tag("main")}, tag("feature/x")},
		{"fork pull request", forkPR, []string{tag("develop"), tag("main")}, ""},
		// The layer cache imports pr-42 too; its mounts are left out.
		{"the default branch after a squash merge", merge, []string{tag("main")}, tag("main")},
	} {
		d, err := cacheref.Decide(tc.ev, cacheref.Options{})
		if err != nil {
			t.Fatal(err)
		}
		imports, export := Refs(d, repo)
		if !slices.Equal(imports, tc.imports) || export != tc.export {
			t.Errorf("%s: imports %q, export %q; want %q, %q", tc.name, imports, export, tc.imports, tc.export)
		}
	}
}
