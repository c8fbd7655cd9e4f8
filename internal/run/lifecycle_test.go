package run_test

import (
	"context"
	"encoding/json"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/ecr"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/fakeecr"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// backend runs the action against one registry: newRun prepares a push of
// branch, do runs it and returns its outputs.
type backend struct {
	registry string // host the cache tags are listed from (the real registry)
	repo     string
	newRun   func(t *testing.T, branch string, extra map[string]string) *teststack.ActionRun
	do       func(t *testing.T, r *teststack.ActionRun) map[string]string
}

func distributionBackend(s *teststack.Stack, repo string) backend {
	return backend{registry: s.Registry, repo: repo,
		newRun: func(t *testing.T, branch string, extra map[string]string) *teststack.ActionRun {
			return pushRun(t, s, repo, branch, extra)
		},
		do: mustRun,
	}
}

func ecrBackend(s *teststack.Stack, e *fakeecr.Server, repo string) backend {
	return backend{registry: s.Registry, repo: repo,
		newRun: func(t *testing.T, branch string, extra map[string]string) *teststack.ActionRun {
			r := ecrRun(t, s, e, repo, extra)
			if err := r.SetPush(branch, "main"); err != nil {
				t.Fatal(err)
			}
			return r
		},
		do: func(t *testing.T, r *teststack.ActionRun) map[string]string {
			t.Helper()
			if err := execRun(t, r); err != nil {
				t.Fatalf("run: %v\n%s", err, r.Stdout())
			}
			return r.Outputs(t)
		},
	}
}

// tags lists the repository's tags in the registry itself.
func (b backend) tags(t *testing.T) []string {
	t.Helper()
	tags, err := teststack.Tags(b.registry + "/" + b.repo)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(tags)
	return tags
}

// event sets a real-shaped payload from cacheref's fixtures, with action
// replaced when given (a closed pull request's fixture reopened).
func event(t *testing.T, r *teststack.ActionRun, name, ref, fixture, action string) {
	t.Helper()
	b, err := os.ReadFile("../cacheref/testdata/" + fixture)
	if err != nil {
		t.Fatal(err)
	}
	if action != "" {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		m["action"] = action
		if pr, ok := m["pull_request"].(map[string]any); ok && action != "closed" {
			pr["state"], pr["merged"], pr["closed_at"], pr["merged_at"] = "open", false, nil, nil
		}
		if b, err = json.Marshal(m); err != nil {
			t.Fatal(err)
		}
	}
	r.Event(t, name, ref, string(b))
}

var (
	featureX = cacheref.BranchKey("feature/x")
	pr7      = cacheref.PRKey(7)
	platform = "linux/" + runtime.GOARCH
)

func cacheTag(k cacheref.Key, scope, platform string) string {
	return cacheref.Tag(cacheref.DefaultPrefix, k, scope, platform)
}

// buildCaches pushes main, develop and feature/x, and builds pull request 7
// (head feature/x), with scopes and a platform. Builds that every step of
// another cache served tag it: develop, feature/x and pr-7 (no scope) are tag
// copies of main's cache, one manifest under four tags. The others have a
// greeting of their own, so a cache of their own.
func buildCaches(t *testing.T, b backend) {
	t.Helper()
	for _, c := range []struct {
		branch string
		pr     bool
		extra  map[string]string
		tag    string
	}{
		{"main", false, nil, cacheTag(cacheref.BranchKey("main"), "", "")},
		{"develop", false, nil, cacheTag(cacheref.BranchKey("develop"), "", "")},
		{"feature/x", false, nil, cacheTag(featureX, "", "")},
		{"feature/x", false, map[string]string{"cache-scope": "web", "build-args": "GREETING=x-web"}, cacheTag(featureX, "web", "")},
		{"feature/x", false, map[string]string{"platforms": platform, "build-args": "GREETING=x-platform"}, cacheTag(featureX, "", platform)},
		{"feature/x", true, nil, cacheTag(pr7, "", "")},
		{"feature/x", true, map[string]string{"cache-scope": "api", "build-args": "GREETING=pr-api"}, cacheTag(pr7, "api", "")},
	} {
		r := b.newRun(t, c.branch, nil)
		for k, v := range c.extra {
			key := "INPUT_" + strings.ToUpper(k)
			if k == "build-args" {
				v = r.Env[key] + "\n" + v // after BASE
			}
			r.Env[key] = v
		}
		if c.pr {
			event(t, r, "pull_request", "refs/pull/7/merge", "pull_request_closed.json", "synchronize")
			r.Env["GITHUB_HEAD_REF"], r.Env["GITHUB_BASE_REF"] = "feature/x", "main"
		}
		o := b.do(t, r)
		if !strings.HasSuffix(o["cache-ref"], "/"+b.repo+":"+c.tag) {
			t.Fatalf("%s %v: cache-ref %q, want tag %s", c.branch, c.extra, o["cache-ref"], c.tag)
		}
	}
}

// cleanupRun runs the action on a cleanup event and returns the deleted-tags
// output and what the run printed.
func cleanupRun(t *testing.T, b backend, name, ref, fixture string) ([]string, string) {
	t.Helper()
	r := b.newRun(t, "main", nil)
	// As the cleanup recipe: the repository alone; build inputs would fail the run.
	delete(r.Env, "INPUT_TAGS")
	delete(r.Env, "INPUT_BUILD-ARGS")
	fixtureEvent(t, r, name, ref, fixture)
	o := b.do(t, r)
	if strings.Contains(r.Stdout(), "[1/") || o["cache-ref"] != "" || o["digest"] != "" {
		t.Errorf("the cleanup run built something:\n%s", r.Stdout())
	}
	var deleted []string
	if o["deleted-tags"] != "" {
		deleted = strings.Split(o["deleted-tags"], "\n")
	}
	slices.Sort(deleted)
	return deleted, r.Stdout() + "\n" + r.Summary(t)
}

func without(all []string, gone ...string) []string {
	return slices.DeleteFunc(slices.Clone(all), func(t string) bool { return slices.Contains(gone, t) })
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

// With ECR, BatchDeleteImage untags: a deleted branch's tags all go, and an
// image another tag names (main's cache, which feature/x's tag copied) stays
// for that tag.
func TestECRCleanupDeletesExactlyTheKeysTags(t *testing.T) {
	s := teststack.Get(t)
	e := startECR(t, s, fakeecr.Repository{Name: "cleanup-ecr"})
	b := ecrBackend(s, e, "cleanup-ecr")
	buildCaches(t, b)
	mainRef := e.RegistryHost + "/cleanup-ecr:" + cacheTag(cacheref.BranchKey("main"), "", "")
	mainBefore, found, err := teststack.Manifest(mainRef, ecrAuth(e))
	if err != nil || !found {
		t.Fatalf("main's cache: found=%v err=%v", found, err)
	}

	before := b.tags(t)
	deleted, log := cleanupRun(t, b, "delete", "refs/heads/main", "delete_branch.json")
	want := sorted(cacheTag(featureX, "", ""), cacheTag(featureX, "web", ""), cacheTag(featureX, "", platform))
	if !slices.Equal(deleted, want) {
		t.Errorf("deleted %q, want feature/x's %q\n%s", deleted, want, log)
	}
	if after := b.tags(t); !slices.Equal(after, without(before, want...)) {
		t.Errorf("tags after deleting feature/x:\n%q\nwant\n%q", after, without(before, want...))
	}
	if mainAfter, found, err := teststack.Manifest(mainRef, ecrAuth(e)); err != nil || !found || mainAfter.Digest != mainBefore.Digest {
		t.Errorf("main's cache after deleting its tag copy: found=%v err=%v", found, err)
	}

	// The pull request's head branch is named main (teslamate#5217): only pr-7 goes.
	before = b.tags(t)
	deleted, log = cleanupRun(t, b, "pull_request", "refs/pull/7/merge", "pull_request_closed_head_main.json")
	want = sorted(cacheTag(pr7, "", ""), cacheTag(pr7, "api", ""))
	if !slices.Equal(deleted, want) {
		t.Errorf("deleted %q, want pr-7's %q\n%s", deleted, want, log)
	}
	if after := b.tags(t); !slices.Equal(after, without(before, want...)) || !slices.Contains(after, cacheTag(cacheref.BranchKey("main"), "", "")) {
		t.Errorf("tags after closing #7:\n%q\nwant\n%q", after, without(before, want...))
	}

	// A fork's pull request never wrote a cache: nothing is deleted, and ECR is not even asked.
	before, calls := b.tags(t), e.TokenCalls()
	deleted, log = cleanupRun(t, b, "pull_request", "refs/pull/7/merge", "pull_request_closed_fork.json")
	if len(deleted) != 0 || !slices.Equal(b.tags(t), before) || e.TokenCalls() != calls {
		t.Errorf("a fork's closed pull request deleted %q (%d token calls)", deleted, e.TokenCalls()-calls)
	}
	if !strings.Contains(log, "::notice::cache cleanup: nothing to delete: pull request from a fork") {
		t.Errorf("no notice for the fork:\n%s", log)
	}
}

// The registry API deletes by digest only, taking every tag of the manifest
// with it: feature/x's and pr-7's tag copies of main's cache are left, with a
// notice, or main's cache would go too.
func TestDistributionCleanupDeletesOnlyUnsharedManifests(t *testing.T) {
	s := teststack.Get(t)
	b := distributionBackend(s, "cleanup-dist")
	buildCaches(t, b)

	before := b.tags(t)
	deleted, log := cleanupRun(t, b, "delete", "refs/heads/main", "delete_branch.json")
	want := sorted(cacheTag(featureX, "web", ""), cacheTag(featureX, "", platform))
	if !slices.Equal(deleted, want) {
		t.Errorf("deleted %q, want %q\n%s", deleted, want, log)
	}
	if after := b.tags(t); !slices.Equal(after, without(before, want...)) {
		t.Errorf("tags after deleting feature/x:\n%q\nwant\n%q", after, without(before, want...))
	}
	if !strings.Contains(log, "::notice::cache cleanup: "+cacheTag(featureX, "", "")+" left: its manifest is also tagged ") ||
		!strings.Contains(log, cacheTag(cacheref.BranchKey("main"), "", "")) {
		t.Errorf("no notice for the tag copy that was left:\n%s", log)
	}

	// pull_request_target closed cleans up as pull_request closed does (its
	// GITHUB_REF is the base branch): the delete role may then trust only
	// the default branch's workflow.
	before = b.tags(t)
	deleted, log = cleanupRun(t, b, "pull_request_target", "refs/heads/main", "pull_request_closed_head_main.json")
	if want := []string{cacheTag(pr7, "api", "")}; !slices.Equal(deleted, want) {
		t.Errorf("deleted %q, want %q\n%s", deleted, want, log)
	}
	if after := b.tags(t); !slices.Equal(after, without(before, cacheTag(pr7, "api", ""))) {
		t.Errorf("tags after closing #7:\n%q", after)
	}

	before = b.tags(t)
	if deleted, log := cleanupRun(t, b, "pull_request_target", "refs/heads/main", "pull_request_closed_fork.json"); len(deleted) != 0 || !slices.Equal(b.tags(t), before) {
		t.Errorf("a fork's closed pull request deleted %q:\n%s", deleted, log)
	}
}

func ecrClient(t *testing.T, e *fakeecr.Server) *ecr.Client {
	t.Helper()
	awsCfg, err := ecr.LoadConfig(context.Background(), fakeecr.DefaultRegion,
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(fakeecr.DefaultAccessKeyID, "x", "")),
		config.WithBaseEndpoint(e.APIURL))
	if err != nil {
		t.Fatal(err)
	}
	return ecr.NewFromConfig(awsCfg, func(string) {}, func(string) {})
}

// ECR dates an image by its first push: a build that skips its export, or
// tags another cache, pushes nothing new. Past cache-refresh-days the action
// puts the manifest again with a dated annotation (a new digest over the same
// layers), which ECR dates now, and BuildKit still imports.
func TestECRKeepsAnActiveCacheAlive(t *testing.T) {
	s := teststack.Get(t)
	prune(t, s)
	e := startECR(t, s, fakeecr.Repository{Name: "alive"})
	b := ecrBackend(s, e, "alive")
	c := ecrClient(t, e)
	mainTag := cacheTag(cacheref.BranchKey("main"), "", "")
	state := func(tag string) (string, time.Time, map[string]string) {
		t.Helper()
		d, found, err := teststack.Manifest(e.RegistryHost+"/alive:"+tag, ecrAuth(e))
		if err != nil || !found {
			t.Fatalf("%s: found=%v err=%v", tag, found, err)
		}
		var m struct {
			Annotations map[string]string `json:"annotations"`
		}
		if err := json.Unmarshal(d.Manifest, &m); err != nil {
			t.Fatal(err)
		}
		pushed, err := c.PushedAt(context.Background(), "", "alive", tag)
		if err != nil {
			t.Fatal(err)
		}
		return d.Digest.String(), pushed, m.Annotations
	}
	build := func(branch string, extra map[string]string) (map[string]string, string) {
		t.Helper()
		r := b.newRun(t, branch, extra)
		o := b.do(t, r)
		return o, r.Stdout() + "\n" + r.Summary(t)
	}
	const tenDays = 10 * 24 * time.Hour

	build("main", nil)
	first, _, _ := state(mainTag)
	e.AgeImages(tenDays)

	prune(t, s)
	o, log := build("main", nil)
	refreshed, pushed, ann := state(mainTag)
	if c, n := steps(t, o); c != n || refreshed == first || time.Since(pushed) > time.Hour || ann[registry.RefreshAnnotation] == "" ||
		!strings.Contains(log, "refreshed, ECR dated it 10 days old") {
		t.Fatalf("a fully cached build of a 10-day-old cache: %d/%d cached, digest %s -> %s, pushed %v, annotations %v\n%s",
			c, n, first, refreshed, pushed, ann, log)
	}

	// The refreshed manifest serves a pruned builder, and is young: left as it is.
	prune(t, s)
	o, log = build("main", nil)
	if c, n := steps(t, o); c != n || o["cache-from"] != o["cache-ref"] {
		t.Errorf("the refreshed cache did not serve the build: %d/%d cached, imported %q\n%s", c, n, o["cache-from"], log)
	}
	if again, _, _ := state(mainTag); again != refreshed || strings.Contains(log, "refreshed") {
		t.Errorf("a young cache was refreshed: %s -> %s", refreshed, again)
	}

	// A new branch tags main's aged cache, then refreshes its own tag only.
	mainRef := o["cache-ref"]
	e.AgeImages(tenDays)
	o, log = build("feature/new", nil)
	branchTag := cacheTag(cacheref.BranchKey("feature/new"), "", "")
	if c, n := steps(t, o); c != n || o["cache-from"] != mainRef || !strings.HasSuffix(o["cache-ref"], ":"+branchTag) {
		t.Errorf("new branch from an aged main: %d/%d cached, imported %q, exported to %q; want every step from main's %q, exported to its own %s\n%s",
			c, n, o["cache-from"], o["cache-ref"], mainRef, branchTag, log)
	}
	branchDigest, branchPushed, _ := state(branchTag)
	if mainNow, _, _ := state(mainTag); mainNow != refreshed || branchDigest == refreshed || time.Since(branchPushed) > time.Hour ||
		!strings.Contains(log, "tagged from") || !strings.Contains(log, "refreshed") {
		t.Errorf("new branch from an aged main: main %s (was %s), branch %s pushed %v\n%s", mainNow, refreshed, branchDigest, branchPushed, log)
	}

	// cache-refresh-days: 0 leaves an old cache as it is.
	_, log = build("main", map[string]string{"cache-refresh-days": "0"})
	if mainNow, _, _ := state(mainTag); mainNow != refreshed || strings.Contains(log, "refreshed") {
		t.Errorf("cache-refresh-days 0 refreshed main: %s -> %s", refreshed, mainNow)
	}
}
