package run_test

import (
	"context"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/run"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// The rest of docker/build-push-action's inputs, each checked where it lands:
// in a RUN step, in the pushed image, in a file or a Docker engine on the
// runner. The Dockerfiles are under testdata/buildopts.

// optsRun prepares a run that builds testdata/buildopts/<dir> into repo.
func optsRun(t *testing.T, s *teststack.Stack, repo, dir string, extra map[string]string) *teststack.ActionRun {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("testdata", "buildopts", dir))
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]string{"context": d}
	for k, v := range extra {
		in[k] = v
	}
	return pushRun(t, s, repo, "main", in)
}

// failRun runs the action, which must fail, and returns its error.
func failRun(t *testing.T, r *teststack.ActionRun) error {
	t.Helper()
	err := run.Run(context.Background(), r.Action(), r.Writer(), r.Environ())
	if err == nil {
		t.Fatalf("the run succeeded; want a failure:\n%s", r.Stdout())
	}
	return err
}

// imageFile is a file of an image the test pushed, or fails the test.
func imageFile(t *testing.T, ref, path string) string {
	t.Helper()
	got, err := teststack.ImageFile(ref, path, nil)
	if err != nil {
		t.Fatalf("%s in %s: %v", path, ref, err)
	}
	return got
}

func TestRunStepOptionsReachTheRunStep(t *testing.T) {
	s := teststack.Get(t)
	mustRun(t, optsRun(t, s, "opts-run-default", "runopts", nil))
	mustRun(t, optsRun(t, s, "opts-run", "runopts", map[string]string{
		"add-hosts":     "db.internal:10.11.12.13,cache.internal=10.11.12.14",
		"shm-size":      "96m",
		"ulimit":        "nofile=1234:2345",
		"cgroup-parent": "ebc-test-parent",
	}))
	for _, c := range []struct {
		input, file, want string
	}{
		{"add-hosts", "/hosts", "10.11.12.13\tdb.internal"},
		{"add-hosts", "/hosts", "10.11.12.14\tcache.internal"},
		{"shm-size", "/shm", "size=98304k"},
		{"ulimit", "/nofile", "1234\n"},
		{"cgroup-parent", "/cgroup", "ebc-test-parent"},
	} {
		if got := imageFile(t, s.Registry+"/opts-run:latest", c.file); !strings.Contains(got, c.want) {
			t.Errorf("%s: %s in the RUN step is %q, want it to hold %q", c.input, c.file, got, c.want)
		}
		// Without the input the RUN step sees otherwise, so the check above can fail.
		if got := imageFile(t, s.Registry+"/opts-run-default:latest", c.file); strings.Contains(got, c.want) {
			t.Errorf("%s: %s holds %q without the input too", c.input, c.file, c.want)
		}
	}
}

func TestNetworkNoneCutsRunStepsOff(t *testing.T) {
	s := teststack.Get(t)
	args := "BASE=" + s.BaseImage + "\nREGISTRY=" + s.Registry
	mustRun(t, optsRun(t, s, "opts-net", "network", map[string]string{"build-args": args}))
	if got := imageFile(t, s.Registry+"/opts-net:latest", "/registry-answer"); got != "{}" {
		t.Errorf("with the default network the RUN step got %q from the registry", got)
	}
	r := optsRun(t, s, "opts-net-none", "network", map[string]string{"build-args": args, "network": "none"})
	failRun(t, r)
	if !strings.Contains(r.Stdout(), "wget: can't connect") && !strings.Contains(r.Stdout(), "wget: bad address") {
		t.Errorf("network: none: the RUN step did not fail to reach the registry:\n%s", r.StdoutTail(3000))
	}
}

func TestSecretEnvsReachRunMasked(t *testing.T) {
	s := teststack.Get(t)
	in := inputsApp(t)
	delete(in, "secrets")
	delete(in, "secret-files")
	in["secret-envs"] = "token=EBC_TOKEN,filetoken=EBC_OTHER"
	r := pushRun(t, s, "opts-secret-envs", "main", in)
	const other = "other-env-secret-5e6f7a"
	r.Env["EBC_TOKEN"], r.Env["EBC_OTHER"] = secretValue, other
	mustRun(t, r)
	image := s.Registry + "/opts-secret-envs:latest"
	for file, want := range map[string]int{"/token-length": len(secretValue), "/filetoken-length": len(other)} {
		if got := strings.TrimSpace(imageFile(t, image, file)); got != strconv.Itoa(want) {
			t.Errorf("%s = %q, want %d: the RUN step did not read the secret from the environment", file, got, want)
		}
	}
	for _, v := range []string{secretValue, other} {
		if !strings.Contains(r.Stdout(), "::add-mask::"+v) {
			t.Errorf("secret-envs value %q was not masked", v)
		}
		if strings.Contains(withoutMaskCommands(r.Stdout()), v) {
			t.Errorf("secret-envs value %q leaked into the log", v)
		}
		if hit, err := teststack.Contains(image, []byte(v), nil); err != nil || hit {
			t.Errorf("secret in the image: %v, %v", hit, err)
		}
	}
}

// sshAgent starts an ssh-agent holding a new key, and returns its socket and
// the key's comment.
func sshAgent(t *testing.T) (sock, comment string) {
	t.Helper()
	dir := t.TempDir()
	sock = filepath.Join(dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatalf("ssh-agent (hack/install-stack.sh installs openssh-client): %v", err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	comment = "ebc-agent-key-" + strconv.Itoa(os.Getpid())
	key := sshKey(t, comment)
	for range 50 {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	add := exec.Command("ssh-add", key)
	add.Env = []string{"SSH_AUTH_SOCK=" + sock}
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	return sock, comment
}

// sshKey writes a new passphrase-less key and returns its path.
func sshKey(t *testing.T, comment string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	return path
}

// fingerprint is a key's SHA256 fingerprint, as ssh-keygen -l prints it.
func fingerprint(t *testing.T, key string) string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-l", "-f", key+".pub").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[1]
}

// agentlist builds testdata/agentlist into a directory to give as a build context.
func agentlist(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "agentlist"), "./testdata/agentlist")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build agentlist: %v: %s", err, out)
	}
	return dir
}

func TestSSHForwardsTheRunnersAgentAndKeyFiles(t *testing.T) {
	s := teststack.Get(t)
	sock, comment := sshAgent(t)
	deploy := sshKey(t, "ebc-deploy-key")
	r := optsRun(t, s, "opts-ssh", "ssh", map[string]string{
		"ssh":            "default\ndeploy=" + deploy,
		"build-contexts": "tools=" + agentlist(t),
	})
	r.Env["SSH_AUTH_SOCK"] = sock
	mustRun(t, r)
	image := s.Registry + "/opts-ssh:latest"
	if got := imageFile(t, image, "/agent-default"); !strings.Contains(got, comment) {
		t.Errorf("RUN --mount=type=ssh saw keys %q, want the runner's agent's key %s", got, comment)
	}
	got := imageFile(t, image, "/agent-deploy")
	if !strings.Contains(got, fingerprint(t, deploy)) || strings.Contains(got, comment) {
		t.Errorf("RUN --mount=type=ssh,id=deploy saw keys %q, want only the deploy key %s", got, fingerprint(t, deploy))
	}

	// Without an agent, default is refused before anything runs.
	r = optsRun(t, s, "opts-ssh", "ssh", map[string]string{"ssh": "default"})
	if err := failRun(t, r); !strings.Contains(err.Error(), "SSH_AUTH_SOCK is not set") {
		t.Errorf("ssh: default without an agent: %v", err)
	}
}

func TestCallCheckFailsOnFindingsAndAnnotatesThem(t *testing.T) {
	s := teststack.Get(t)
	r := optsRun(t, s, "call-lint", "lint", map[string]string{"call": "check"})
	err := failRun(t, r)
	if !strings.Contains(err.Error(), "Check complete, 1 warning has been found!") {
		t.Errorf("call: check: %v", err)
	}
	dockerfile, _ := filepath.Abs("testdata/buildopts/lint/Dockerfile")
	want := "::warning file=" + dockerfile + ",line=2,title="
	if !strings.Contains(r.Stdout(), want) || !strings.Contains(r.Stdout(), "::FromAsCasing: ") {
		t.Errorf("no FromAsCasing annotation %q in:\n%s", want, r.StdoutTail(3000))
	}
	if _, found, _ := teststack.Manifest(s.Registry+"/call-lint:latest", nil); found {
		t.Error("call: check pushed an image")
	}

	// ignorestatus reports the findings without failing; a clean file passes.
	mustRun(t, optsRun(t, s, "call-lint", "lint", map[string]string{"call": "check,ignorestatus=true"}))
	r = optsRun(t, s, "call-clean", "clean", map[string]string{"call": "check"})
	mustRun(t, r)
	if !strings.Contains(r.Stdout(), "Check complete, no warnings found.") || strings.Contains(r.Stdout(), "::warning file=") {
		t.Errorf("a clean Dockerfile's check:\n%s", r.StdoutTail(2000))
	}
}

func TestCallTargetsAndOutlinePrintTheAnswer(t *testing.T) {
	s := teststack.Get(t)
	r := optsRun(t, s, "call-targets", "clean", map[string]string{"call": "targets"})
	mustRun(t, r)
	if !strings.Contains(r.Stdout(), "TARGET") || !strings.Contains(r.Stdout(), "first") || !strings.Contains(r.Stdout(), "final (default)") {
		t.Errorf("call: targets printed:\n%s", r.StdoutTail(2000))
	}
	r = optsRun(t, s, "call-outline", "clean", map[string]string{"call": "outline,format=json"})
	mustRun(t, r)
	if !strings.Contains(r.Stdout(), `"name": "BASE"`) || !strings.Contains(r.Stdout(), `"value": "`+s.BaseImage+`"`) {
		t.Errorf("call: outline,format=json printed:\n%s", r.StdoutTail(2000))
	}
	if _, found, _ := teststack.Manifest(s.Registry+"/call-targets:latest", nil); found {
		t.Error("call: targets pushed an image")
	}
}

func TestNoCacheFiltersRebuildOnlyTheNamedStage(t *testing.T) {
	s := teststack.Get(t)
	mustRun(t, optsRun(t, s, "nocache-filters", "stages", nil))
	if c, n := steps(t, mustRun(t, optsRun(t, s, "nocache-filters", "stages", nil))); c != n || n != 4 {
		t.Fatalf("rebuild: %d/%d cached; the test needs a warm builder", c, n)
	}
	r := optsRun(t, s, "nocache-filters", "stages", map[string]string{"no-cache-filters": "a"})
	mustRun(t, r)
	// Stage a runs again; stage b, which does not depend on it, comes from cache.
	for step, want := range map[string]string{"[a 2/2] RUN echo a > /a": "DONE", "[b 2/2] RUN echo b > /b": "CACHED"} {
		if got := stepEnd(r.Stdout(), step); got != want {
			t.Errorf("no-cache-filters: a: %s ended %q, want %s:\n%s", step, got, want, r.StdoutTail(3000))
		}
	}
}

// stepEnd is how BuildKit's plain progress ends a step: CACHED, DONE or ERROR.
func stepEnd(progress, step string) string {
	m := regexp.MustCompile(`(?m)^#(\d+) ` + regexp.QuoteMeta(step) + `$`).FindStringSubmatch(progress)
	if m == nil {
		return ""
	}
	end := regexp.MustCompile(`(?m)^#` + m[1] + ` (CACHED|DONE|ERROR)`).FindStringSubmatch(progress)
	if end == nil {
		return ""
	}
	return end[1]
}

// pull makes every FROM resolve its image in the registry, never a builder's
// image store: BuildKit records that mode in the FROM's source operation,
// which provenance mode=max publishes. (BuildKit's OCI worker, the one the
// moby/buildkit image runs, has no image store and always resolves in the
// registry; a containerd worker's store is where pull changes what is used.)
func TestPullReachesEveryFromInTheBuildDefinition(t *testing.T) {
	s := teststack.Get(t)
	const forced = `"image.resolvemode":"pull"`
	for _, pull := range []string{"true", "false"} {
		repo := "pull-" + pull
		mustRun(t, optsRun(t, s, repo, "clean", map[string]string{"pull": pull, "provenance": "mode=max"}))
		hit, err := teststack.Contains(s.Registry+"/"+repo+":latest", []byte(forced), nil)
		if err != nil || hit != (pull == "true") {
			t.Errorf("pull: %s: the build definition's FROM has %s: %v (%v)", pull, forced, hit, err)
		}
	}
}

// gitServer serves a repository holding hello.txt over git's smart HTTP
// protocol (git http-backend), to those who send token as build-push-action's
// GIT_AUTH_TOKEN secret makes BuildKit send it; it returns the server's URL.
func gitServer(t *testing.T, token string) string {
	t.Helper()
	root, work := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "hello.txt"), []byte("hello from git\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "hello.txt"},
		{"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init"},
	} {
		if out, err := exec.Command("git", append([]string{"-C", work}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	if out, err := exec.Command("git", "clone", "-q", "--bare", work, filepath.Join(root, "repo.git")).CombinedOutput(); err != nil {
		t.Fatalf("git clone --bare: %v: %s", err, out)
	}
	backend := &cgi.Handler{Path: "/usr/lib/git-core/git-http-backend", Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, pass, ok := r.BasicAuth(); !ok || user != "x-access-token" || pass != token {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "token required", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestGitHubTokenAuthenticatesGitContexts(t *testing.T) {
	s := teststack.Get(t)
	const token = "ghs_ebcTestToken0123456789abcdef"
	server := gitServer(t, token)
	in := map[string]string{"build-contexts": "src=" + server + "/repo.git#main", "github-token": token}
	r := optsRun(t, s, "git-token", "git", in)
	r.Env["GITHUB_SERVER_URL"] = server
	mustRun(t, r)
	if got := imageFile(t, s.Registry+"/git-token:latest", "/hello.txt"); got != "hello from git\n" {
		t.Errorf("COPY --from=src: %q", got)
	}
	if !strings.Contains(r.Stdout(), "::add-mask::"+token) || strings.Contains(withoutMaskCommands(r.Stdout()), token) {
		t.Error("github-token was not masked, or leaked into the log")
	}

	// Without the token the server refuses the build's git fetch.
	delete(in, "github-token")
	r = optsRun(t, s, "git-token", "git", in)
	r.Env["GITHUB_SERVER_URL"] = server
	failRun(t, r)
	if !strings.Contains(r.Stdout(), "401") && !strings.Contains(r.Stdout(), "Authentication failed") && !strings.Contains(r.Stdout(), "could not read Username") {
		t.Errorf("without github-token: not an authentication failure:\n%s", r.StdoutTail(2000))
	}
}
