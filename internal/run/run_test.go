package run_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ecr-build-cache/ecr-build-cache/internal/run"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

func TestMain(m *testing.M) { os.Exit(teststack.Main(m)) }

// appDir is a three-step sample app: RUN, COPY, RUN.
func appDir(t *testing.T) string {
	d, err := filepath.Abs("testdata/app")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// appCopy copies the sample app into a new directory.
func appCopy(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"Dockerfile", "app.txt"} {
		b, err := os.ReadFile(filepath.Join(appDir(t), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// pushRun prepares a run for a push to branch, building the sample app into repo.
func pushRun(t *testing.T, s *teststack.Stack, repo, branch string, extra map[string]string) *teststack.ActionRun {
	t.Helper()
	inputs := map[string]string{
		"registry":      "http://" + s.Registry,
		"repository":    repo,
		"tags":          "latest",
		"context":       appDir(t),
		"build-args":    "BASE=" + s.BaseImage,
		"buildkit-host": s.BuildkitAddr,
	}
	for k, v := range extra {
		inputs[k] = v
	}
	r := teststack.NewActionRun(t, inputs)
	if err := r.SetPush(branch, "main"); err != nil {
		t.Fatal(err)
	}
	return r
}

// mustRun runs the action and returns its outputs.
func mustRun(t *testing.T, r *teststack.ActionRun) map[string]string {
	t.Helper()
	o, err := tryRun(t, r)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, r.Stdout())
	}
	return o
}

// tryRun runs the action and returns its outputs and error.
func tryRun(t *testing.T, r *teststack.ActionRun) (map[string]string, error) {
	t.Helper()
	err := run.Run(context.Background(), r.Action(), r.Writer(), r.Environ())
	if err != nil {
		return nil, err
	}
	return r.Outputs(t), nil
}

func steps(t *testing.T, o map[string]string) (cached, total int) {
	t.Helper()
	c, err1 := strconv.Atoi(o["cached-steps"])
	n, err2 := strconv.Atoi(o["total-steps"])
	if err1 != nil || err2 != nil {
		t.Fatalf("cached-steps %q, total-steps %q", o["cached-steps"], o["total-steps"])
	}
	return c, n
}

func prune(t *testing.T, s *teststack.Stack) {
	t.Helper()
	if err := s.Prune(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestColdBuildThenPrunedRebuildIsFullyCached(t *testing.T) {
	s := teststack.Get(t)
	prune(t, s)

	cold := mustRun(t, pushRun(t, s, "cold-warm", "main", nil))
	if c, n := steps(t, cold); n != 3 || c != 0 {
		t.Fatalf("cold build: %d/%d steps cached, want 0/3", c, n)
	}
	image := s.Registry + "/cold-warm:latest"
	if cold["image"] != image {
		t.Errorf("image output %q, want %q", cold["image"], image)
	}
	d, found, err := teststack.Manifest(image, nil)
	if err != nil || !found {
		t.Fatalf("image %s not pushed: found=%v err=%v", image, found, err)
	}
	if d.Digest.String() != cold["digest"] {
		t.Errorf("digest output %q, registry has %s", cold["digest"], d.Digest)
	}
	var meta struct {
		Digest     string `json:"containerimage.digest"`
		Descriptor struct {
			Digest string `json:"digest"`
		} `json:"containerimage.descriptor"`
	}
	if err := json.Unmarshal([]byte(cold["metadata"]), &meta); err != nil || meta.Digest != cold["digest"] || meta.Descriptor.Digest != cold["digest"] {
		t.Errorf("metadata output %s (%v): want the digest, and the descriptor as JSON", cold["metadata"], err)
	}
	if cold["cache-from"] != "" || cold["cache-hit-ref"] != "" {
		t.Errorf("cold build: cache-from %q, cache-hit-ref %q; nothing existed to import", cold["cache-from"], cold["cache-hit-ref"])
	}

	// The cache tag holds an OCI image manifest with BuildKit's cache config: the
	// format ECR accepts (image-manifest=true, oci-mediatypes=true).
	ref := cold["cache-ref"]
	if !strings.HasPrefix(ref, s.Registry+"/cold-warm:cache-main-") {
		t.Fatalf("cache-ref %q, want %s/cold-warm:cache-main-<hash>", ref, s.Registry)
	}
	cd, found, err := teststack.Manifest(ref, nil)
	if err != nil || !found {
		t.Fatalf("cache tag %s not pushed: found=%v err=%v", ref, found, err)
	}
	var m struct {
		MediaType string `json:"mediaType"`
		Config    struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
		Layers []json.RawMessage `json:"layers"`
	}
	if err := json.Unmarshal(cd.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.Config.MediaType != "application/vnd.buildkit.cacheconfig.v0" || len(m.Layers) == 0 {
		t.Fatalf("cache manifest: mediaType %q, config %q, %d layers; want an OCI image manifest with a buildkit cacheconfig and layers",
			m.MediaType, m.Config.MediaType, len(m.Layers))
	}

	prune(t, s)
	r := pushRun(t, s, "cold-warm", "main", nil)
	warm := mustRun(t, r)
	if c, n := steps(t, warm); n != 3 || c != 3 {
		t.Fatalf("rebuild on a pruned builder: %d/%d steps cached, want 3/3\n%s", c, n, r.Stdout())
	}
	if warm["cache-hit-ref"] != ref {
		t.Errorf("cache-hit-ref %q, want the branch's own %q", warm["cache-hit-ref"], ref)
	}
	// Every step came from the branch's own cache: writing it again would change nothing.
	if after, _, err := teststack.Manifest(ref, nil); err != nil || after.Digest != cd.Digest || !strings.Contains(r.Stdout(), "cache export: skipped") {
		t.Errorf("cache tag %s rewritten (%v -> %v, %v) or no note in the log", ref, cd.Digest, after.Digest, err)
	}
	if got, err := teststack.ImageFile(image, "/app/greeting", nil); err != nil || got != "hello\n" {
		t.Errorf("/app/greeting after cached rebuild = %q, %v; want hello", got, err)
	}
	if sum := r.Summary(t); !strings.Contains(sum, "| Cached steps | 3/3: cache saved about ") {
		t.Errorf("job summary lacks the cached/total line:\n%s", sum)
	}
}

func TestNewBranchStartsFromDefaultBranchCache(t *testing.T) {
	s := teststack.Get(t)
	prune(t, s)
	main := mustRun(t, pushRun(t, s, "new-branch", "main", nil))
	prune(t, s)

	r := pushRun(t, s, "new-branch", "feature/Login#2", map[string]string{"tags": "feature"})
	o := mustRun(t, r)
	if c, n := steps(t, o); n != 3 || c != 3 {
		t.Fatalf("first build of a new branch: %d/%d steps cached, want 3/3 from main's cache\n%s", c, n, r.Stdout())
	}
	if o["cache-ref"] == main["cache-ref"] || !strings.Contains(o["cache-ref"], ":cache-feature-Login-2-") {
		t.Errorf("new branch exports to %q (main: %q); want its own cache-feature-Login-2-<hash> tag", o["cache-ref"], main["cache-ref"])
	}
	// The branch's own tag does not exist yet: probing leaves main's alone.
	if o["cache-from"] != main["cache-ref"] || o["cache-hit-ref"] != main["cache-ref"] {
		t.Errorf("cache-from = %q, cache-hit-ref = %q; want only main's %q", o["cache-from"], o["cache-hit-ref"], main["cache-ref"])
	}
	// Every step came from main's cache: the branch's tag names the same manifest.
	own, found, err := teststack.Manifest(o["cache-ref"], nil)
	if err != nil || !found {
		t.Fatalf("new branch's cache tag not pushed: found=%v err=%v", found, err)
	}
	if mainCache, _, err := teststack.Manifest(main["cache-ref"], nil); err != nil || mainCache.Digest != own.Digest {
		t.Errorf("new branch's cache %v is not main's %v (%v)", own.Digest, mainCache.Digest, err)
	}
	if !strings.Contains(r.Stdout(), "cache export: "+o["cache-ref"]+" tagged from "+main["cache-ref"]) {
		t.Errorf("the log does not say the cache was tagged from main's:\n%s", r.Stdout())
	}
}

func TestMatrixScopesKeepSeparateCompleteCaches(t *testing.T) {
	s := teststack.Get(t)
	scopes := map[string]string{"linux/amd64": "from-amd64", "linux/386": "from-386"}
	refs := map[string]string{}
	for scope, greeting := range scopes {
		prune(t, s)
		o := mustRun(t, pushRun(t, s, "matrix", "main", map[string]string{
			"cache-scope": scope, "tags": strings.ReplaceAll(scope, "/", "-"),
			"build-args": "BASE=" + s.BaseImage + "\nGREETING=" + greeting,
		}))
		refs[scope] = o["cache-ref"]
	}
	if refs["linux/amd64"] == refs["linux/386"] {
		t.Fatalf("both scopes export to %s", refs["linux/amd64"])
	}
	for scope, greeting := range scopes {
		prune(t, s)
		r := pushRun(t, s, "matrix", "main", map[string]string{
			"cache-scope": scope, "tags": strings.ReplaceAll(scope, "/", "-"),
			"build-args": "BASE=" + s.BaseImage + "\nGREETING=" + greeting,
		})
		o := mustRun(t, r)
		if c, n := steps(t, o); c != n || n != 3 {
			t.Errorf("scope %s rebuilt with %d/%d steps cached, want all\n%s", scope, c, n, r.Stdout())
		}
		if o["cache-hit-ref"] != refs[scope] {
			t.Errorf("scope %s served by %q, want its own %q", scope, o["cache-hit-ref"], refs[scope])
		}
		image := s.Registry + "/matrix:" + strings.ReplaceAll(scope, "/", "-")
		if got, err := teststack.ImageFile(image, "/app/greeting", nil); err != nil || got != greeting+"\n" {
			t.Errorf("scope %s: /app/greeting = %q, %v", scope, got, err)
		}
	}
}

func TestForkPullRequestPushesNothing(t *testing.T) {
	s := teststack.Get(t)
	mustRun(t, pushRun(t, s, "fork-pr", "main", nil))
	before := teststack.MustTags(t, s.Registry+"/fork-pr")

	r := pushRun(t, s, "fork-pr", "main", map[string]string{"tags": "pr-43"})
	fixtureEvent(t, r, "pull_request", "refs/pull/43/merge", "pull_request_fork.json")
	r.Env["GITHUB_HEAD_REF"] = `zzz";echo${IFS}"hello";#`
	r.Env["GITHUB_BASE_REF"] = "develop"
	prune(t, s) // the steps must come from main's registry cache, not the builder's
	o := mustRun(t, r)
	if o["cache-ref"] != "" {
		t.Errorf("fork PR exported its cache to %q", o["cache-ref"])
	}
	if c, n := steps(t, o); c != n || n != 3 {
		t.Errorf("fork PR did not read main's cache: %d/%d cached, want 3/3", c, n)
	}
	if after := teststack.MustTags(t, s.Registry+"/fork-pr"); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("tags changed from %q to %q", before, after)
	}
	if !strings.Contains(r.Stdout(), "::notice::pull request from a fork") {
		t.Errorf("no notice saying why nothing is pushed:\n%s", r.Stdout())
	}
}
