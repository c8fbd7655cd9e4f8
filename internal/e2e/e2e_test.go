// Package e2e runs the action through a real workflow runner, nektos/act, on
// this machine (-P ubuntu-latest=-self-hosted: steps run on the host, no Docker):
// act reads action.yml, starts dist/launcher.js with node, which runs the
// binary shipped in dist/ as a release tag has it, and runs the post step. The
// workflows in testdata build against the local test stack; every address is
// loopback and nothing is fetched from GitHub.
//
// The tests run one after another: they prune the shared buildkitd.
package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

func TestMain(m *testing.M) { os.Exit(teststack.MainWith(m, teststack.Options{WithAct: true})) }

const testdata = "internal/e2e/testdata"

// e2e is what every act run shares: the stack, a workspace (a git repository
// with this repository's files, as a user's checkout) and act's cache dir, so
// the launcher builds the binary once and later runs reuse it.
type e2e struct {
	stack      *teststack.Stack
	workspace  string
	actCache   string
	home       string
	goEnv      []string
	standInMap []string // --local-repository flags for pinned third-party actions
}

var shared struct {
	once sync.Once
	e    *e2e
	err  error
}

func setup(t *testing.T) *e2e {
	t.Helper()
	s := teststack.Get(t)
	shared.once.Do(func() { shared.e, shared.err = newE2E(s, teststack.Binary(t)) })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.e
}

func newE2E(s *teststack.Stack, bin string) (*e2e, error) {
	dir := filepath.Join(s.Dir, "e2e")
	e := &e2e{stack: s, workspace: filepath.Join(dir, "repo"), actCache: filepath.Join(dir, "act-cache"), home: filepath.Join(dir, "home")}
	for _, d := range []string{e.workspace, e.actCache, e.home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	var err error
	if e.goEnv, err = goEnv(); err != nil {
		return nil, err
	}
	if err := copyRepo(teststack.RepoRoot(), e.workspace); err != nil {
		return nil, fmt.Errorf("copy the repository: %w", err)
	}
	// A source build takes minutes with the fresh caches it uses (launcher_test.go tests it).
	if b, err := os.ReadFile(bin); err != nil {
		return nil, err
	} else if err := shipBinary(e.workspace, b); err != nil {
		return nil, err
	}
	if err := commitAll(e.workspace, e.home); err != nil {
		return nil, err
	}
	// The reusable workflows run the action of their own release.
	e.standInMap = []string{"--local-repository", releaseRef + "=" + e.workspace}
	// act reads a remote action's action.yml even for a skipped step; the
	// workflows' pinned AWS step is skipped here, so it maps to a stand-in that fails if run.
	var pins []string
	for _, name := range []string{"build-image.yml", "build-multiarch.yml"} {
		wf, err := os.ReadFile(filepath.Join(e.workspace, ".github/workflows", name))
		if err != nil {
			return nil, err
		}
		for _, m := range regexp.MustCompile(`uses: ([\w-]+/[\w-]+@[0-9a-f]{40})`).FindAllStringSubmatch(string(wf), -1) {
			if !strings.HasPrefix(m[1], "actions/checkout@") && !slices.Contains(pins, m[1]) { // act copies the workspace for a checkout
				pins = append(pins, m[1])
				e.standInMap = append(e.standInMap, "--local-repository", m[1]+"="+filepath.Join(e.workspace, testdata, "stand-in"))
			}
		}
	}
	return e, nil
}

// goEnv passes the Go settings on explicitly (HOME changes for act), so that the
// launcher's `go build` shares this machine's build and module caches.
func goEnv() ([]string, error) {
	cmd := exec.Command("go", "env", "-json", "GOCACHE", "GOMODCACHE", "GOPROXY", "GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GOFLAGS")
	cmd.Env = append(os.Environ(), "AWS_EC2_METADATA_DISABLED=true")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go env: %w", err)
	}
	var m map[string]string
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, err
	}
	env := []string{"GOTOOLCHAIN=local"}
	for k, v := range m {
		if k == "GOFLAGS" {
			v = strings.TrimSpace(v + " -buildvcs=false") // the act workspace has no .git
		}
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env, nil
}

// checkoutPaths are what the workflows use from a checkout of this repository:
// the action, its sources (the launcher builds them) and the workflows.
var checkoutPaths = []string{"action.yml", "go.mod", "go.sum", "main.go", "dist/launcher.js", "internal", ".github"}

// copyRepo copies checkoutPaths from src to dst.
func copyRepo(src, dst string) error {
	for _, root := range checkoutPaths {
		err := filepath.WalkDir(filepath.Join(src, root), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			if d.IsDir() {
				return os.MkdirAll(filepath.Join(dst, rel), 0o755)
			}
			if !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// actRun is one `act <event>` run of a workflow in testdata/workflows.
type actRun struct {
	Log     string
	Outputs map[string]string // the build step's outputs, when the workflow records them
}

func (e *e2e) act(t *testing.T, event, workflow, eventFile string, vars map[string]string) actRun {
	t.Helper()
	r, err := e.tryAct(t, event, workflow, eventFile, vars)
	if err != nil {
		t.Fatalf("act %s %s: %v\n%s", event, workflow, err, tail(r.Log, 6000))
	}
	return r
}

// tryAct runs act and returns its error: a failed job makes act exit non-zero.
func (e *e2e) tryAct(t *testing.T, event, workflow, eventFile string, vars map[string]string) (actRun, error) {
	t.Helper()
	return e.tryActIn(t, actDir{dir: e.workspace, workflows: filepath.Join(testdata, "workflows"), events: filepath.Join(testdata, "events")}, event, workflow, eventFile, vars)
}

// actDir is where act runs: a repository, its workflows and event payloads
// (relative to it), and what that run adds to act's flags and environment.
type actDir struct {
	dir, workflows, events string
	args, env              []string
}

func (e *e2e) tryActIn(t *testing.T, in actDir, event, workflow, eventFile string, vars map[string]string) (actRun, error) {
	t.Helper()
	result := filepath.Join(t.TempDir(), "outputs.json")
	args := []string{event,
		// Each act run is its own workflow run, as on GitHub (act's default is 1 for all).
		"--env", "GITHUB_RUN_ID=" + strconv.FormatInt(runIDs.Add(1), 10),
		"-P", "ubuntu-latest=-self-hosted",
		"-W", filepath.Join(in.workflows, workflow),
		"-e", filepath.Join(in.events, eventFile),
		"--defaultbranch", "main",
		"--env", "GITHUB_REPOSITORY=octo/app",
		"--var", "REGISTRY=" + e.stack.Registry,
		"--var", "BASE_IMAGE=" + e.stack.BaseImage,
		"--var", "BUILDKIT_HOST=" + e.stack.BuildkitAddr,
		"--var", "RESULT_FILE=" + result,
		"--action-cache-path", e.actCache,
		// Nothing from GitHub, no docker, every server loopback or off.
		"--action-offline-mode", "--pull=false", "--container-daemon-socket", "-",
		"--no-cache-server", "--cache-server-addr", "127.0.0.1", "--artifact-server-addr", "127.0.0.1",
	}
	args = append(append(args, e.standInMap...), in.args...) // later --local-repository flags win
	for k, v := range vars {
		args = append(args, "--var", k+"="+v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.stack.Tool("act"), args...)
	cmd.Dir = in.dir
	// act hands its own environment to the steps, so this is the runner's.
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + e.home,
		"ACT_DISABLE_VERSION_CHECK=1",
		"AWS_EC2_METADATA_DISABLED=true",
	}, slices.Concat(e.goEnv, in.env)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("act %s %s: %.1fs", event, workflow, time.Since(start).Seconds())
	r := actRun{Log: out.String()}
	if strings.Contains(r.Log, "LocalRepositoryCache not matched") {
		t.Errorf("act went to fetch an action from GitHub: pin it as build-image.yml does so that it maps to the stand-in\n%s", tail(r.Log, 3000))
	}
	if b, rerr := os.ReadFile(result); rerr == nil {
		if jerr := json.Unmarshal(b, &r.Outputs); jerr != nil {
			t.Fatalf("outputs %s: %v", b, jerr)
		}
	}
	return r, err
}

// runIDs numbers the act runs.
var runIDs atomic.Int64

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func prune(t *testing.T, s *teststack.Stack) {
	t.Helper()
	if err := s.Prune(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func mustExist(t *testing.T, ref string) {
	t.Helper()
	if _, found, err := teststack.Manifest(ref, nil); err != nil || !found {
		t.Errorf("%s not in the registry: found=%v err=%v", ref, found, err)
	}
}

func TestPushThenPushOnAPrunedBuilderIsFullyCached(t *testing.T) {
	e := setup(t)
	s := e.stack
	prune(t, s)
	cold := e.act(t, "push", "build.yml", "push.json", map[string]string{"REPOSITORY": "e2e-push"})
	o := cold.Outputs
	if o["cached-steps"] != "0" || o["total-steps"] != "3" {
		t.Errorf("cold run: %s/%s steps cached, want 0/3", o["cached-steps"], o["total-steps"])
	}
	if !strings.HasPrefix(o["cache-ref"], s.Registry+"/e2e-push:cache-main-") {
		t.Errorf("cache-ref output %q, want the main branch's cache tag", o["cache-ref"])
	}
	mustExist(t, o["cache-ref"])
	image := s.Registry + "/e2e-push:latest"
	if d, found, err := teststack.Manifest(image, nil); err != nil || !found || d.Digest.String() != o["digest"] {
		t.Errorf("image %s: found=%v err=%v; want digest output %s", image, found, err, o["digest"])
	}
	// The post step ran, after the main step, and said so.
	main, post := strings.Index(cold.Log, "Success - Main ./"), strings.Index(cold.Log, "Run Post ./")
	if main < 0 || post < main || !strings.Contains(cold.Log[post:], "ecr-build-cache post: nothing to clean up") ||
		!strings.Contains(cold.Log[post:], "Success - Post ./") {
		t.Errorf("no successful post step after the main step:\n%s", tail(cold.Log, 3000))
	}

	// A fresh runner: empty builder, the cache only in the registry. The
	// workflow's own check step fails the run unless every step was cached.
	prune(t, s)
	warm := e.act(t, "push", "build.yml", "push.json", map[string]string{"REPOSITORY": "e2e-push", "EXPECT_CACHED": "true"})
	if !strings.Contains(warm.Log, "cache check: 3 of 3 steps cached") || !strings.Contains(warm.Log, "Success - Main every step cached") {
		t.Errorf("the workflow's cache check did not pass:\n%s", tail(warm.Log, 3000))
	}
	if warm.Outputs["cache-ref"] != o["cache-ref"] {
		t.Errorf("warm run exported to %q, want %q", warm.Outputs["cache-ref"], o["cache-ref"])
	}
}

func TestForkPullRequestReadsTheCacheAndWritesNothing(t *testing.T) {
	e := setup(t)
	s := e.stack
	repo := s.Registry + "/e2e-fork"
	prune(t, s)
	main := e.act(t, "push", "build.yml", "push.json", map[string]string{"REPOSITORY": "e2e-fork"})
	before, err := teststack.Tags(repo)
	if err != nil {
		t.Fatal(err)
	}

	prune(t, s)
	pr := e.act(t, "pull_request", "build.yml", "fork-pr.json", map[string]string{"REPOSITORY": "e2e-fork", "EXPECT_CACHED": "true"})
	if !strings.Contains(pr.Log, "Success - Main every step cached") {
		t.Errorf("the fork PR did not build from the main branch's cache:\n%s", tail(pr.Log, 3000))
	}
	if pr.Outputs["cache-ref"] != "" {
		t.Errorf("fork PR cache-ref output %q, want none", pr.Outputs["cache-ref"])
	}
	if !strings.Contains(pr.Outputs["cache-from"], main.Outputs["cache-ref"]) {
		t.Errorf("fork PR imported %q, want main's %s", pr.Outputs["cache-from"], main.Outputs["cache-ref"])
	}
	// Neither the PR's cache tag nor its image were written: no tag appeared at all.
	for _, ref := range []string{repo + ":" + cacheref.Tag(cacheref.DefaultPrefix, cacheref.PRKey(7), "", ""), repo + ":pr"} {
		if _, found, err := teststack.Manifest(ref, nil); err != nil || found {
			t.Errorf("fork PR wrote %s: found=%v err=%v; want nothing", ref, found, err)
		}
	}
	after, err := teststack.Tags(repo)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before, after) {
		t.Errorf("tags after the fork PR %v, before %v; a fork PR writes nothing", after, before)
	}
}

func TestReusableWorkflowMatrixKeepsACachePerScope(t *testing.T) {
	e := setup(t)
	s := e.stack
	repo := s.Registry + "/e2e-matrix"
	prune(t, s)
	r := e.act(t, "push", "matrix.yml", "push.json", map[string]string{"REPOSITORY": "e2e-matrix"})
	if n := strings.Count(r.Log, "Job succeeded"); n != 2 {
		t.Errorf("%d matrix jobs succeeded, want 2:\n%s", n, tail(r.Log, 3000))
	}
	tags, err := teststack.Tags(repo)
	if err != nil {
		t.Fatal(err)
	}
	var caches []string
	for _, tag := range tags {
		if strings.HasPrefix(tag, "cache-") {
			caches = append(caches, tag)
		}
	}
	want := []string{
		cacheref.Tag(cacheref.DefaultPrefix, cacheref.BranchKey("main"), "api", ""),
		cacheref.Tag(cacheref.DefaultPrefix, cacheref.BranchKey("main"), "worker", ""),
	}
	slices.Sort(caches)
	if !slices.Equal(caches, want) {
		t.Errorf("cache tags %v, want one per scope %v", caches, want)
	}
	mustExist(t, repo+":api")
	mustExist(t, repo+":worker")
}

func TestFailedRunFailsTheJobAndPostStillRuns(t *testing.T) {
	e := setup(t)
	r, err := e.tryAct(t, "push", "build.yml", "push.json", map[string]string{"REPOSITORY": "e2e-fail", "CACHE_MODE": "fastest"})
	if err == nil {
		t.Fatalf("act succeeded with cache-mode: fastest; the action's exit code must fail the job\n%s", tail(r.Log, 3000))
	}
	for _, want := range []string{"cache-mode", "Failure - Main ./", "ecr-build-cache post: nothing to clean up", "Success - Post ./"} {
		if !strings.Contains(r.Log, want) {
			t.Errorf("act log lacks %q:\n%s", want, tail(r.Log, 3000))
		}
	}
	if strings.Contains(r.Log, "Run Main record outputs") {
		t.Errorf("steps after the failed one ran:\n%s", tail(r.Log, 3000))
	}
}
