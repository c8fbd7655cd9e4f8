package e2e_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/fakeecr"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// releaseRef is how the reusable workflows name the action: the release they
// belong to (the release job rewrites it to the exact tag). act maps it to the
// workspace, the checkout of this repository.
const releaseRef = "ecr-build-cache/ecr-build-cache@v1"

// quickStart is the README's quick start, the file users copy.
const quickStart = "docs/examples/quick-start.yml"

// awsPin matches the pinned configure-aws-credentials step of a workflow.
var awsPin = regexp.MustCompile(`uses: (aws-actions/configure-aws-credentials@[0-9a-f]{40})`)

// ecrRun is an act run in a repository of its own (a user's, not this one)
// whose AWS step reaches the ECR double: the pinned configure-aws-credentials
// maps to a stand-in that exports the double's credentials, and the runner's
// environment points the AWS SDK at the double and the action at buildkitd,
// as a runner with a builder of its own.
type ecrRun struct {
	ecr *fakeecr.Server
	in  actDir
}

// newECRRun starts an ECR double holding repos in front of the stack's
// registry and lays out a git repository with files (path -> content).
func newECRRun(t *testing.T, e *e2e, repos []string, files map[string][]byte) *ecrRun {
	t.Helper()
	var rs []fakeecr.Repository
	for _, r := range repos {
		rs = append(rs, fakeecr.Repository{Name: r})
	}
	ecr, err := fakeecr.Start(fakeecr.Config{Upstream: "http://" + e.stack.Registry, Region: "eu-west-1", Repositories: rs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ecr.Close() })

	dir := t.TempDir()
	for p, b := range files {
		writeFile(t, filepath.Join(dir, p), b, 0o644)
	}
	if err := commitAll(dir, e.home); err != nil {
		t.Fatal(err)
	}
	r := &ecrRun{ecr: ecr, in: actDir{
		dir:       dir,
		workflows: ".github/workflows",
		events:    filepath.Join(e.workspace, testdata, "events"),
		env:       []string{"AWS_ENDPOINT_URL_ECR=" + ecr.APIURL, "BUILDKIT_HOST=" + e.stack.BuildkitAddr},
	}}
	standIn := filepath.Join(e.workspace, testdata, "aws-stand-in")
	for _, b := range files {
		for _, m := range awsPin.FindAllStringSubmatch(string(b), -1) {
			r.in.args = append(r.in.args, "--local-repository", m[1]+"="+standIn)
		}
	}
	// The reusable workflows' own AWS step.
	for _, name := range []string{"build-image.yml", "build-multiarch.yml"} {
		for _, m := range awsPin.FindAllStringSubmatch(string(readRepoFile(t, ".github/workflows/"+name)), -1) {
			r.in.args = append(r.in.args, "--local-repository", m[1]+"="+standIn)
		}
	}
	return r
}

func (r *ecrRun) act(t *testing.T, e *e2e, event, workflow, eventFile string, vars map[string]string) actRun {
	t.Helper()
	res, err := r.tryAct(t, e, event, workflow, eventFile, vars)
	if err != nil {
		t.Fatalf("act %s %s: %v\n%s", event, workflow, err, tail(res.Log, 6000))
	}
	return res
}

// tryAct runs act with the repository variables the documented workflows
// read, and returns its error: a failed job makes act exit non-zero.
func (r *ecrRun) tryAct(t *testing.T, e *e2e, event, workflow, eventFile string, vars map[string]string) (actRun, error) {
	t.Helper()
	vars["AWS_ROLE_ARN"] = "arn:aws:iam::" + fakeecr.DefaultAccountID + ":role/build"
	vars["AWS_REGION"] = "eu-west-1"
	return e.tryActIn(t, r.in, event, workflow, eventFile, vars)
}

// newQuickStartRun is a user's repository with the test app and the quick
// start as its build.yml, verbatim.
func newQuickStartRun(t *testing.T, e *e2e) *ecrRun {
	t.Helper()
	files := appFiles(t, e.stack)
	files[".github/workflows/build.yml"] = readRepoFile(t, quickStart)
	return newECRRun(t, e, []string{"my-app"}, files)
}

func readRepoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(teststack.RepoRoot(), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// commitAll makes dir a git repository with everything in it committed on
// main: act reads the ref, SHA and workflow files of a git repository.
func commitAll(dir, home string) error {
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "e2e"}} {
		cmd := exec.Command("git", append([]string{"-c", "user.name=e2e", "-c", "user.email=e2e@localhost", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "GIT_CONFIG_NOSYSTEM=1", "AWS_EC2_METADATA_DISABLED=true"}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %v: %w\n%s", args, err, out)
		}
	}
	return nil
}

// appFiles is a user's repository without its workflow: the test app, whose
// Dockerfile names the base image (the documented workflows pass no build-args)
// and, in an ENV that every RUN step's cache key holds, the test: the tests
// share the registry's my-app, and each starts cold.
func appFiles(t *testing.T, s *teststack.Stack) map[string][]byte {
	t.Helper()
	df := strings.Replace(string(readRepoFile(t, testdata+"/app/Dockerfile")), "ARG BASE\nFROM ${BASE}", "FROM "+s.BaseImage+"\nENV E2E_TEST="+t.Name(), 1)
	return map[string][]byte{"Dockerfile": []byte(df), "app.txt": readRepoFile(t, testdata+"/app/app.txt")}
}

// cacheLines are the lines of an act log that say what each build imported,
// exported and ran: what a cache miss is diagnosed from when the log is long.
func cacheLines(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		for _, w := range []string{"cache import", "cache export", "steps cached", "fallback", "CACHED", "DONE", "warning"} {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return tail(strings.Join(out, "\n"), 12000)
}

func headSHA(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// The quick start, verbatim, in a repository of its own: a push to main
// builds cold and pushes my-app:<sha> to the ECR registry; on a fresh builder
// the next push is fully cached; a pull request from a branch builds from
// that cache and pushes no image; a fork's pull request builds and writes
// nothing, without ever running the AWS step.
func TestQuickStartVerbatimColdThenCachedAndForkSafe(t *testing.T) {
	e := setup(t)
	s := e.stack
	r := newQuickStartRun(t, e)
	image := s.Registry + "/my-app:" + headSHA(t, r.in.dir)

	prune(t, s)
	cold := r.act(t, e, "push", "build.yml", "push.json", map[string]string{})
	for _, want := range []string{"configure-aws-credentials stand-in: assumed", "logged in to ECR registry " + r.ecr.RegistryHost, "0/3 steps cached", "Job succeeded"} {
		if !strings.Contains(cold.Log, want) {
			t.Errorf("cold run: the log lacks %q:\n%s", want, tail(cold.Log, 4000))
		}
	}
	mustExist(t, image)

	prune(t, s)
	warm := r.act(t, e, "push", "build.yml", "push.json", map[string]string{})
	if !strings.Contains(warm.Log, "3/3 steps cached") || !strings.Contains(warm.Log, "| Cached steps | 3/3") {
		t.Errorf("second run on a fresh builder: want 3/3 steps cached in the log and the job summary:\n%s", tail(warm.Log, 4000))
	}

	// A pull request from a branch of the repository builds from main's cache
	// and keeps its own cache tag; its image is not pushed.
	prune(t, s)
	pr := r.act(t, e, "pull_request", "build.yml", "pr.json", map[string]string{})
	if !strings.Contains(pr.Log, "3/3 steps cached") || !strings.Contains(pr.Log, "| Image | not pushed |") {
		t.Errorf("same-repository pull request: want a build from main's cache that pushes no image:\n%s", tail(pr.Log, 4000))
	}
	prCache := s.Registry + "/my-app:" + cacheref.Tag(cacheref.DefaultPrefix, cacheref.PRKey(8), "", "")
	if _, found, err := teststack.Manifest(prCache, nil); err != nil || !found {
		t.Errorf("same-repository pull request: no cache tag %s (found=%v, %v):\n%s", prCache, found, err, tail(pr.Log, 4000))
	}

	before := teststack.MustTags(t, s.Registry+"/my-app")
	prune(t, s)
	fork := r.act(t, e, "pull_request", "build.yml", "fork-pr.json", map[string]string{})
	if strings.Contains(fork.Log, "configure-aws-credentials stand-in") || !strings.Contains(fork.Log, "building without the registry") || !strings.Contains(fork.Log, "Job succeeded") {
		t.Errorf("fork pull request: want the AWS step skipped and a green build without the registry:\n%s", tail(fork.Log, 4000))
	}
	if after := teststack.MustTags(t, s.Registry+"/my-app"); !slices.Equal(before, after) {
		t.Errorf("tags after the fork's pull request %v, before %v; a fork writes nothing", after, before)
	}
}

// Another repository calls both reusable workflows at the release tag: the
// single image and the two-platform index land in its ECR repositories with
// the build secret passed, the next run on a fresh builder is fully cached,
// and a fork's pull request that asks to push pushes nothing.
func TestOtherRepositoryCallsTheReusableWorkflowsAtTheRelease(t *testing.T) {
	e := setup(t)
	s := e.stack
	files := map[string][]byte{".github/workflows/images.yml": readRepoFile(t, testdata+"/caller/images.yml")}
	for _, f := range []string{"Dockerfile", "app.txt"} {
		files[f] = readRepoFile(t, testdata+"/caller/"+f)
	}
	r := newECRRun(t, e, []string{"caller-app", "caller-multi"}, files)
	r.in.args = append(r.in.args, "--secret", "BUILD_TOKEN=e2e-token")

	prune(t, s)
	cold := r.act(t, e, "push", "images.yml", "push.json", map[string]string{})
	o := cold.Outputs
	if o["image-result"] != "success" || o["multiarch-result"] != "success" || o["image-cached-steps"] != "0" || o["image-total-steps"] != "3" {
		t.Errorf("cold run outputs %v; want both workflows green and 0/3 steps cached", o)
	}
	if !strings.Contains(cold.Log, "LocalRepositoryCache matched") || strings.Count(cold.Log, "0/3 steps cached") != 3 {
		t.Errorf("cold run: want the release mapped to this checkout and three cold builds (image, two platforms):\n%s", tail(cold.Log, 4000))
	}
	img := s.Registry + "/caller-app:latest"
	if d, found, err := teststack.Manifest(img, nil); err != nil || !found || d.Digest.String() != o["image-digest"] {
		t.Errorf("%s: found=%v err=%v; want the digest output %s", img, found, err, o["image-digest"])
	}
	if state, err := teststack.ImageFile(img, "app/token-state", nil); err != nil || state != "token passed\n" {
		t.Errorf("%s: /app/token-state %q (%v); want the workflow secret passed to the build", img, state, err)
	}
	multi := s.Registry + "/caller-multi:latest"
	if d, found, err := teststack.Manifest(multi, nil); err != nil || !found || d.Digest.String() != o["multiarch-digest"] || o["multiarch-platforms"] != "linux/amd64,linux/386" {
		t.Errorf("%s: found=%v err=%v; outputs %v; want the index of both platforms", multi, found, err, o)
	}

	prune(t, s)
	warm := r.act(t, e, "push", "images.yml", "push.json", map[string]string{})
	if w := warm.Outputs; w["image-cached-steps"] != "3" || w["image-total-steps"] != "3" || strings.Count(warm.Log, "3/3 steps cached") != 3 {
		t.Errorf("second run on a fresh builder: outputs %v; want every step of all three builds cached; the cache lines of its jobs:\n%s",
			w, cacheLines(warm.Log))
	}

	before := map[string][]string{"caller-app": teststack.MustTags(t, s.Registry+"/caller-app"), "caller-multi": teststack.MustTags(t, s.Registry+"/caller-multi")}
	prune(t, s)
	fork := r.act(t, e, "pull_request", "images.yml", "fork-pr.json", map[string]string{})
	if f := fork.Outputs; f["image-result"] != "success" || f["multiarch-result"] != "success" || f["image-digest"] != "" || f["multiarch-digest"] != "" {
		t.Errorf("fork pull request outputs %v; want green builds that pushed nothing", f)
	}
	if strings.Contains(fork.Log, "configure-aws-credentials stand-in") {
		t.Errorf("fork pull request: the AWS step ran:\n%s", tail(fork.Log, 4000))
	}
	for repo, tags := range before {
		if after := teststack.MustTags(t, s.Registry+"/"+repo); !slices.Equal(tags, after) {
			t.Errorf("%s: tags after the fork's pull request %v, before %v; a fork writes nothing", repo, after, tags)
		}
	}
}

// The release job's rewrite, run as it runs there: every action step of both
// reusable workflows names the exact release tag afterwards, so a caller at
// @vN, @vX.Y.Z or the release commit runs the action of that same release.
func TestReleaseRewritesTheReusableWorkflowsToTheirOwnTag(t *testing.T) {
	t.Parallel()
	var sed string
	for _, line := range strings.Split(string(readRepoFile(t, ".github/workflows/release.yml")), "\n") {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "sed -i -E ") && strings.Contains(l, "build-image.yml") {
			sed = l
		}
	}
	if sed == "" {
		t.Fatal("release.yml has no sed -i -E line rewriting build-image.yml")
	}
	dir := t.TempDir()
	want := map[string]int{}
	for _, name := range []string{"build-image.yml", "build-multiarch.yml"} {
		b := readRepoFile(t, ".github/workflows/"+name)
		want[name] = strings.Count(string(b), "uses: "+releaseRef+"\n")
		if want[name] == 0 || strings.Contains(string(b), "uses: ./\n") {
			t.Errorf("%s: want its action steps as `uses: %s` (the form act maps and the release rewrites), none as uses: ./", name, releaseRef)
		}
		writeFile(t, filepath.Join(dir, ".github/workflows", name), b, 0o644)
	}
	cmd := exec.Command("bash", "-c", sed)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "GITHUB_REPOSITORY=octo/ecr-build-cache", "TAG=v1.4.2"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", sed, err, out)
	}
	for name, n := range want {
		b, err := os.ReadFile(filepath.Join(dir, ".github/workflows", name))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Count(string(b), "uses: octo/ecr-build-cache@v1.4.2\n"); got != n || strings.Contains(string(b), "uses: "+releaseRef) {
			t.Errorf("%s after the release rewrite: %d steps name octo/ecr-build-cache@v1.4.2, want %d and none left at %s:\n%s", name, got, n, releaseRef, b)
		}
	}
}
