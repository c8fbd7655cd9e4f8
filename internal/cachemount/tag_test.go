package cachemount

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
)

var validTag = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// Mount tags read like their layer cache's, stay valid, and never equal a
// layer-cache tag: not the same key's, and not the tag of a branch or a
// prefix chosen to look like one.
func TestTagNeverCollidesWithLayerCache(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("feature/very-long-branch-name-", 10)
	for _, tc := range []struct {
		prefix          string
		key             cacheref.Key
		scope, platform string
	}{
		{"cache", cacheref.BranchKey("main"), "", ""},
		{"cache", cacheref.PRKey(42), "api", "linux/arm64"},
		{strings.Repeat("p", 32), cacheref.BranchKey(long), long, "linux/arm/v7"},
	} {
		got := Tag(tc.prefix, tc.key, tc.scope, tc.platform)
		if !validTag.MatchString(got) {
			t.Errorf("Tag(%q, %v) = %q: not a valid tag", tc.prefix, tc.key, got)
		}
		if !strings.HasPrefix(got, tc.prefix+"-mnt-") {
			t.Errorf("Tag(%q, %v) = %q: want the prefix %q", tc.prefix, tc.key, got, tc.prefix+"-mnt-")
		}
		lookalikes := []string{
			cacheref.Tag(tc.prefix, tc.key, tc.scope, tc.platform),
			cacheref.Tag(tc.prefix+"-mnt", tc.key, tc.scope, tc.platform),
			cacheref.Tag(tc.prefix, cacheref.BranchKey("mnt-"+tc.key.Name), tc.scope, tc.platform),
		}
		if slices.Contains(lookalikes, got) {
			t.Errorf("Tag(%q, %v) = %q equals a layer-cache tag %q", tc.prefix, tc.key, got, lookalikes)
		}
	}
	if Tag("cache", cacheref.BranchKey("main"), "", "") == Tag("cache", cacheref.BranchKey("main"), "", "linux/amd64") {
		t.Error("the platform is not part of the mount tag")
	}
}

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
	tag := func(branch string) string { return repo + ":" + Tag("cache", cacheref.BranchKey(branch), "", "") }
	for _, tc := range []struct {
		name    string
		ev      cacheref.Event
		imports []string
		export  string
	}{
		{"push to a branch", push, []string{tag("feature/x"), tag("main")}, tag("feature/x")},
		{"fork pull request", forkPR, []string{tag("develop"), tag("main")}, ""},
	} {
		d, err := cacheref.Decide(tc.ev, cacheref.Options{})
		if err != nil {
			t.Fatal(err)
		}
		imports, export := Refs(d, repo, "cache", "", "")
		if !slices.Equal(imports, tc.imports) || export != tc.export {
			t.Errorf("%s: imports %q, export %q; want %q, %q", tc.name, imports, export, tc.imports, tc.export)
		}
	}
}
