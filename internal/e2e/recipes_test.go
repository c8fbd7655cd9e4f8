package e2e_test

import (
	"maps"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/docs"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/fakeecr"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// recipeStandIns are the stand-ins for the third-party actions the recipes
// use (act fetches nothing here), by action name.
var recipeStandIns = map[string]string{
	"aws-actions/configure-aws-credentials": "aws-stand-in",
	"docker/metadata-action":                "metadata-stand-in",
	"actions/checkout":                      "checkout-stand-in",
}

var usesLine = regexp.MustCompile(`uses: ([\w.-]+/[\w.-]+)@(\S+)`)

// recipe is the workflow docs/recipes.md marks <!-- workflow: name -->, as a
// user copies it, and the --local-repository flags that map its third-party
// actions to their stand-ins.
func recipe(t *testing.T, e *e2e, name string) (workflow []byte, args []string) {
	t.Helper()
	wf, err := docs.Workflow(string(readRepoFile(t, "docs/recipes.md")), name)
	if err != nil {
		t.Fatalf("docs/recipes.md: %v", err)
	}
	for _, m := range usesLine.FindAllStringSubmatch(wf, -1) {
		if m[1]+"@"+m[2] == releaseRef {
			continue
		}
		dir, ok := recipeStandIns[m[1]]
		if !ok {
			t.Fatalf("recipe %s uses %s, which has no stand-in in recipeStandIns", name, m[1])
		}
		args = append(args, "--local-repository", m[0][len("uses: "):]+"="+filepath.Join(e.workspace, testdata, dir))
	}
	return []byte(wf), args
}

// tagDigests is every tag of repo with the digest it names.
func tagDigests(t *testing.T, repo string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, tag := range teststack.MustTags(t, repo) {
		d, found, err := teststack.Manifest(repo+":"+tag, nil)
		if err != nil || !found {
			t.Fatalf("%s:%s: found=%v, %v", repo, tag, found, err)
		}
		out[tag] = d.Digest.String()
	}
	return out
}

// revision is the label and annotation metadata-action sets to the commit.
const revision = "org.opencontainers.image.revision"

// imageMetadata is an image's config labels and manifest annotations.
func imageMetadata(t *testing.T, ref string) (labels, annotations map[string]string) {
	t.Helper()
	d, found, err := teststack.Manifest(ref, nil)
	if err != nil || !found {
		t.Fatalf("%s: found=%v, %v", ref, found, err)
	}
	img, err := d.Image()
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("%s config: %v", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatalf("%s manifest: %v", ref, err)
	}
	return cfg.Config.Labels, m.Annotations
}

// The metadata-action recipe and the read-only pull_request_target recipe,
// copied from docs/recipes.md into a user's repository: a push to main
// pushes metadata-action's my-app:main and my-app:sha-<short> to the ECR
// registry's my-app repository (no registry host given anywhere) with its
// labels and annotations, and again fully cached on a fresh builder; a fork's
// pull request builds without the registry and writes nothing; then a fork's pull_request_target run
// assumes the read-only role, builds from main's cache, and neither pushes
// nor writes a cache: every tag of my-app names the same manifest as before.
func TestRecipesMetadataActionThenForkPullRequestTarget(t *testing.T) {
	e := setup(t)
	s := e.stack
	meta, metaArgs := recipe(t, e, "metadata")
	fork, forkArgs := recipe(t, e, "fork-pr-target")
	files := appFiles(t, s)
	files[".github/workflows/build.yml"] = meta
	files[".github/workflows/fork-build.yml"] = fork
	r := newECRRun(t, e, []string{"my-app"}, files)
	r.in.args = append(append(r.in.args, metaArgs...), forkArgs...)
	r.in.env = append(r.in.env, "CHECKOUT_SOURCE="+r.in.dir)
	short := headSHA(t, r.in.dir)[:7]

	prune(t, s)
	cold := r.act(t, e, "push", "build.yml", "push.json", map[string]string{})
	for _, want := range []string{"metadata-action stand-in: my-app:main", "logged in to ECR registry " + r.ecr.RegistryHost, "0/3 steps cached", "Job succeeded"} {
		if !strings.Contains(cold.Log, want) {
			t.Errorf("metadata recipe, cold push to main: the log lacks %q:\n%s", want, tail(cold.Log, 4000))
		}
	}
	repo := s.Registry + "/my-app"
	pushed := tagDigests(t, repo)
	t.Logf("my-app after the push to main: %v", pushed)
	if pushed["main"] == "" || pushed["main"] != pushed["sha-"+short] {
		t.Errorf("metadata recipe: my-app's tags %v; want main and sha-%s on one image in the ECR repository my-app", pushed, short)
	}
	labels, annotations := imageMetadata(t, repo+":main")
	if want := headSHA(t, r.in.dir); labels[revision] != want || annotations[revision] != want {
		t.Errorf("metadata recipe: my-app:main has label %s=%q and annotation %q; want metadata-action's %s in both", revision, labels[revision], annotations[revision], want)
	}

	prune(t, s)
	warm := r.act(t, e, "push", "build.yml", "push.json", map[string]string{})
	if !strings.Contains(warm.Log, "3/3 steps cached") {
		t.Errorf("metadata recipe, second push on a fresh builder: want 3/3 steps cached:\n%s", tail(warm.Log, 4000))
	}

	// A fork's pull request: metadata-action's my-app:pr-7 is built without
	// the registry (no AWS credentials), and nothing is written.
	before := tagDigests(t, repo)
	prune(t, s)
	pr := r.act(t, e, "pull_request", "build.yml", "fork-pr.json", map[string]string{})
	for _, want := range []string{"metadata-action stand-in: my-app:pr-7", "building without the registry", "Job succeeded"} {
		if !strings.Contains(pr.Log, want) {
			t.Errorf("metadata recipe, fork pull request: the log lacks %q:\n%s", want, tail(pr.Log, 4000))
		}
	}
	if strings.Contains(pr.Log, "configure-aws-credentials stand-in") {
		t.Errorf("metadata recipe, fork pull request: the AWS step ran:\n%s", tail(pr.Log, 4000))
	}
	if after := tagDigests(t, repo); !maps.Equal(before, after) {
		t.Errorf("metadata recipe, fork pull request: my-app's tags went from %v to %v; a fork writes nothing", before, after)
	}

	prune(t, s)
	target := r.act(t, e, "pull_request_target", "fork-build.yml", "fork-pr.json", map[string]string{
		"AWS_READ_ONLY_ROLE_ARN": "arn:aws:iam::" + fakeecr.DefaultAccountID + ":role/read-only",
	})
	for _, want := range []string{"checkout stand-in: ref 2222222222222222222222222222222222222222", "assumed arn:aws:iam::" + fakeecr.DefaultAccountID + ":role/read-only", "3/3 steps cached", "Job succeeded"} {
		if !strings.Contains(target.Log, want) {
			t.Errorf("pull_request_target recipe, fork: the log lacks %q:\n%s", want, tail(target.Log, 4000))
		}
	}
	if after := tagDigests(t, repo); !maps.Equal(before, after) {
		t.Errorf("pull_request_target recipe, fork: my-app's tags went from %v to %v; an untrusted run pushes and writes nothing", before, after)
	}
}

// The cleanup recipe, copied from docs/recipes.md next to the quick start:
// when pull request #8 (a branch of the repository) closes, the cleanup run
// assumes the cleanup role and deletes pr-8's cache tag, which the pull
// request's build wrote, and nothing else: main's image and cache stay.
func TestRecipesCleanupDeletesAClosedPullRequestsCache(t *testing.T) {
	e := setup(t)
	s := e.stack
	cleanup, args := recipe(t, e, "cleanup")
	files := appFiles(t, s)
	files[".github/workflows/build.yml"] = readRepoFile(t, quickStart)
	files[".github/workflows/cleanup.yml"] = cleanup
	r := newECRRun(t, e, []string{"my-app"}, files)
	r.in.args = append(r.in.args, args...)
	repo := s.Registry + "/my-app"

	r.act(t, e, "push", "build.yml", "push.json", map[string]string{})
	r.act(t, e, "pull_request", "build.yml", "pr.json", map[string]string{})
	before := tagDigests(t, repo)
	prTag := cacheref.Tag(cacheref.DefaultPrefix, cacheref.PRKey(8), "", "")
	if before[prTag] == "" {
		t.Fatalf("the pull request's build wrote no %s: tags %v", prTag, before)
	}

	closed := r.act(t, e, "pull_request", "cleanup.yml", "pr-closed.json", map[string]string{
		"AWS_CLEANUP_ROLE_ARN": "arn:aws:iam::" + fakeecr.DefaultAccountID + ":role/cleanup",
	})
	if !strings.Contains(closed.Log, "assumed arn:aws:iam::"+fakeecr.DefaultAccountID+":role/cleanup") || !strings.Contains(closed.Log, "| "+prTag) || !strings.Contains(closed.Log, "Job succeeded") {
		t.Errorf("cleanup recipe, pull request closed: want the cleanup role assumed and %s echoed as deleted:\n%s", prTag, tail(closed.Log, 4000))
	}
	want := maps.Clone(before)
	delete(want, prTag)
	if after := tagDigests(t, repo); !maps.Equal(want, after) {
		t.Errorf("cleanup recipe: my-app's tags went from %v to %v; want only %s gone", before, after, prTag)
	}
}

// The monorepo recipe, copied from docs/recipes.md: a push to main builds
// both services of the matrix into the one repository my-app, each under its
// own tag and cache scope, and the next push on a fresh builder takes every
// step of both from their own caches.
func TestRecipesMonorepoKeepsACachePerService(t *testing.T) {
	e := setup(t)
	s := e.stack
	wf, args := recipe(t, e, "monorepo")
	files := map[string][]byte{".github/workflows/services.yml": wf}
	for p, b := range appFiles(t, s) {
		files["services/api/"+p] = b
		files["services/worker/"+p] = b
	}
	files["services/worker/app.txt"] = []byte("the worker\n")
	r := newECRRun(t, e, []string{"my-app"}, files)
	r.in.args = append(r.in.args, args...)
	sha := headSHA(t, r.in.dir)

	prune(t, s)
	cold := r.act(t, e, "push", "services.yml", "push.json", map[string]string{})
	if n := strings.Count(cold.Log, "0/3 steps cached"); n != 2 {
		t.Errorf("monorepo recipe, cold push: %d builds of 0/3 steps cached, want both services':\n%s", n, tail(cold.Log, 4000))
	}
	tags := tagDigests(t, s.Registry+"/my-app")
	t.Logf("my-app after the push to main: %v", tags)
	for _, svc := range []string{"api", "worker"} {
		if cache := cacheref.Tag(cacheref.DefaultPrefix, cacheref.BranchKey("main"), svc, ""); tags[svc+"-"+sha] == "" || tags[cache] == "" {
			t.Errorf("monorepo recipe: my-app's tags %v; want %s-%s and the cache %s", tags, svc, sha, cache)
		}
	}
	if tags["api-"+sha] == tags["worker-"+sha] {
		t.Errorf("monorepo recipe: the api and worker images are one image %s; their contexts differ", tags["api-"+sha])
	}

	prune(t, s)
	warm := r.act(t, e, "push", "services.yml", "push.json", map[string]string{})
	if n := strings.Count(warm.Log, "3/3 steps cached"); n != 2 {
		t.Errorf("monorepo recipe, second push on a fresh builder: %d builds of 3/3 steps cached, want both services':\n%s", n, tail(warm.Log, 4000))
	}
}

// The migration recipe's workflow after the diff in docs/recipes.md, as a
// user who followed it has it: no amazon-ecr-login, no cache-from/cache-to,
// and the bare tag still lands in the ECR repository, with the build-arg
// passed; the second push on a fresh builder is fully cached.
func TestRecipesMigratedWorkflowPushesToECR(t *testing.T) {
	e := setup(t)
	s := e.stack
	wf, args := recipe(t, e, "migrate")
	files := appFiles(t, s)
	files[".github/workflows/build.yml"] = wf
	files["Dockerfile"] = append(files["Dockerfile"], []byte("ARG VERSION\nRUN echo \"$VERSION\" > /app/version\n")...)
	r := newECRRun(t, e, []string{"my-app"}, files)
	r.in.args = append(r.in.args, args...)
	sha := headSHA(t, r.in.dir)
	image := s.Registry + "/my-app:" + sha

	prune(t, s)
	cold := r.act(t, e, "push", "build.yml", "push.json", map[string]string{})
	if !strings.Contains(cold.Log, "0/4 steps cached") || !strings.Contains(cold.Log, "Job succeeded") {
		t.Errorf("migrated workflow, cold push: want a green build of 0/4 steps cached:\n%s", tail(cold.Log, 4000))
	}
	if v, err := teststack.ImageFile(image, "app/version", nil); err != nil || v != sha+"\n" {
		t.Errorf("%s: /app/version %q (%v); want the build-arg VERSION=%s", image, v, err, sha)
	}

	prune(t, s)
	warm := r.act(t, e, "push", "build.yml", "push.json", map[string]string{})
	if !strings.Contains(warm.Log, "4/4 steps cached") {
		t.Errorf("migrated workflow, second push on a fresh builder: want 4/4 steps cached:\n%s", tail(warm.Log, 4000))
	}
}

// The quick start's build step on a closed pull request (a workflow that adds
// closed to its pull_request types, the "build after merge" pattern) fails
// naming cache-cleanup, as the cleanup recipe says, rather than silently
// deleting the pull request's cache instead of building: nothing is deleted.
func TestQuickStartOnAClosedPullRequestFailsNamingCacheCleanup(t *testing.T) {
	e := setup(t)
	s := e.stack
	r := newQuickStartRun(t, e)
	r.act(t, e, "pull_request", "build.yml", "pr.json", map[string]string{})
	before := tagDigests(t, s.Registry+"/my-app")

	res, err := r.tryAct(t, e, "pull_request", "build.yml", "pr-closed.json", map[string]string{})
	if err == nil || !strings.Contains(res.Log, "but it is given build inputs (tags, push); to build on this event set cache-cleanup: false") {
		t.Errorf("quick start on a closed pull request: want a failed step naming cache-cleanup: false (err %v):\n%s", err, tail(res.Log, 4000))
	}
	if after := tagDigests(t, s.Registry+"/my-app"); !maps.Equal(before, after) {
		t.Errorf("quick start on a closed pull request: my-app's tags went from %v to %v; want nothing deleted", before, after)
	}
}
