package e2e_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// The launcher tests run dist/launcher.js with node as the runner does: in a
// checkout of the action, with the environment a step gets.

var shippedName = "ecr-build-cache-linux-" + runtime.GOARCH

// launcherCheckout is an action checkout holding only dist/launcher.js (plus
// what the test adds), with a PATH that has node and nothing else.
// Under -short the test skips: it needs node, and most launcher tests build the action.
func launcherCheckout(t *testing.T) (root, path string) {
	t.Helper()
	teststack.SkipShort(t)
	root = t.TempDir()
	js, err := os.ReadFile(filepath.Join(teststack.RepoRoot(), "dist", "launcher.js"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "dist", "launcher.js"), js, 0o644)
	path = t.TempDir()
	link(t, "node", path)
	return root, path
}

// link puts the named program into the PATH directory dir.
func link(t *testing.T, program, dir string) {
	t.Helper()
	p, err := exec.LookPath(program)
	if err != nil {
		t.Fatalf("%s is needed to run the launcher: %v", program, err)
	}
	if err := os.Symlink(p, filepath.Join(dir, program)); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, mode); err != nil {
		t.Fatal(err)
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ship puts bin into the checkout as a release does, with its checksum line.
func ship(t *testing.T, root string, bin []byte) {
	t.Helper()
	if err := shipBinary(root, bin); err != nil {
		t.Fatal(err)
	}
}

func shipBinary(root string, bin []byte) error {
	if err := os.MkdirAll(filepath.Join(root, "dist"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "dist", shippedName), bin, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, "dist", "checksums.txt"), []byte(sha256Hex(bin)+"  "+shippedName+"\n"), 0o644)
}

// fakeBinary is a shell script standing in for the action's binary.
func fakeBinary(body string) []byte { return []byte("#!/bin/sh\n" + body + "\n") }

// startLauncher starts `node dist/launcher.js` with r's environment (later
// entries of env win) and its output going to r.
func startLauncher(t *testing.T, root, path string, r *teststack.ActionRun, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(filepath.Join(path, "node"), filepath.Join(root, "dist", "launcher.js"))
	cmd.Env = []string{"PATH=" + path, "HOME=" + t.TempDir(), "RUNNER_TOOL_CACHE=" + t.TempDir(), "RUNNER_TEMP=" + t.TempDir(), "AWS_EC2_METADATA_DISABLED=true"}
	for k, v := range r.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = r.Writer(), r.Writer()
	// An orphan left holding the output open must not keep Wait from
	// returning once node has exited.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// runLauncher runs the launcher to its end and returns what it printed and its exit code.
func runLauncher(t *testing.T, root, path string, env ...string) (string, int) {
	t.Helper()
	r := teststack.NewActionRun(t, nil)
	cmd := startLauncher(t, root, path, r, env...)
	if err := cmd.Wait(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatal(err)
		}
	}
	return r.Stdout(), cmd.ProcessState.ExitCode()
}

func TestLauncherWithoutBinaryOrGoSaysHowToPin(t *testing.T) {
	t.Parallel()
	root, path := launcherCheckout(t)
	out, code := runLauncher(t, root, path)
	if code != 1 || !strings.Contains(out, "::error::") || !strings.Contains(out, "Pin a release tag") || !strings.Contains(out, "actions/setup-go") {
		t.Fatalf("exit %d, printed:\n%s\nwant exit 1 and an error saying to pin a release or set up Go", code, out)
	}
	// Its post step then had nothing to clean up: that must not fail the job too.
	out, code = runLauncher(t, root, path, "STATE_isPost=true")
	if code != 0 || !strings.Contains(out, "ecr-build-cache post: nothing to clean up") || strings.Contains(out, "::error::") {
		t.Fatalf("post step without a binary: exit %d, printed:\n%s\nwant exit 0", code, out)
	}
}

func TestLauncherRunsTheShippedBinaryForMainAndPost(t *testing.T) {
	t.Parallel()
	root, path := launcherCheckout(t)
	// A release tag ships dist/ecr-build-cache-<os>-<arch>; no Go on PATH is needed then.
	bin, err := os.ReadFile(teststack.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	ship(t, root, bin)
	state := filepath.Join(t.TempDir(), "state")

	// Main step without inputs: the binary's failure is the step's exit code.
	out, code := runLauncher(t, root, path, "GITHUB_STATE="+state)
	if code != 1 || !strings.Contains(out, "::error::") || !strings.Contains(out, "repository") {
		t.Fatalf("main step without inputs: exit %d, printed:\n%s\nwant exit 1 and the input problems", code, out)
	}
	saved, err := os.ReadFile(state)
	if err != nil || !strings.Contains(string(saved), "isPost=true") {
		t.Fatalf("main step saved state %q (%v); the post step is told apart by isPost=true", saved, err)
	}

	// The runner hands saved state back as STATE_<name>: the launcher runs the post step.
	out, code = runLauncher(t, root, path, "STATE_isPost=true")
	if code != 0 || !strings.Contains(out, "ecr-build-cache post: nothing to clean up") {
		t.Fatalf("post step: exit %d, printed:\n%s", code, out)
	}
}

func TestLauncherRunsAShippedBinaryOnlyIfChecksumsTxtVouchesForIt(t *testing.T) {
	t.Parallel()
	bin := fakeBinary(`echo "fake ran: $*"; exit 3`)
	other := fakeBinary(`echo "other ran"`)
	for _, tc := range []struct {
		name      string
		checksums string // "" leaves dist/checksums.txt out
		refusal   string // what the error says; "" when the binary must run
	}{
		{name: "matching entry", checksums: sha256Hex(other) + "  ecr-build-cache-linux-other\n" + sha256Hex(bin) + "  " + shippedName + "\n"},
		{name: "matching entry in binary mode", checksums: sha256Hex(bin) + " *" + shippedName + "\n"},
		{name: "mismatch", checksums: sha256Hex(other) + "  " + shippedName + "\n",
			refusal: "dist/" + shippedName + " has SHA-256 " + sha256Hex(bin) + ", but dist/checksums.txt says " + sha256Hex(other) + ": the binary was altered; refusing to run it"},
		{name: "no entry for this platform", checksums: sha256Hex(bin) + "  ecr-build-cache-linux-other\n",
			refusal: "checksums.txt has no entry for " + shippedName + "; refusing to run an unverified binary"},
		{name: "no checksums.txt", refusal: "checksums.txt is missing, so dist/" + shippedName + " cannot be verified; refusing to run it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root, path := launcherCheckout(t)
			writeFile(t, filepath.Join(root, "dist", shippedName), bin, 0o755)
			if tc.checksums != "" {
				writeFile(t, filepath.Join(root, "dist", "checksums.txt"), []byte(tc.checksums), 0o644)
			}
			for _, step := range []struct {
				env  []string
				args string
			}{{nil, ""}, {[]string{"STATE_isPost=true"}, "post"}} {
				out, code := runLauncher(t, root, path, step.env...)
				if tc.refusal == "" {
					if code != 3 || !strings.Contains(out, "fake ran: "+step.args+"\n") {
						t.Errorf("%v: exit %d, printed:\n%s\nwant the binary run (fake ran: %s) and its exit code 3", step.env, code, out, step.args)
					}
					continue
				}
				if strings.Contains(out, "fake ran") {
					t.Errorf("%v: the unverified binary ran:\n%s", step.env, out)
				}
				// The post step of a refused main step has nothing to clean up and does not fail the job twice.
				want, wantCode := "::error::ecr-build-cache: ", 1
				if step.args == "post" {
					want, wantCode = "ecr-build-cache: ", 0
				}
				if code != wantCode || !strings.Contains(out, want) || !strings.Contains(out, tc.refusal) {
					t.Errorf("%v: exit %d, printed:\n%s\nwant exit %d and %q", step.env, code, out, wantCode, want+"..."+tc.refusal)
				}
			}
		})
	}
}

// sourceCheckout is an action checkout without prebuilt binaries holding a
// small Go program (testdata/launcher-fixture) that the launcher builds from
// source, with go on PATH, this machine's Go caches (which the launcher must
// not use) and, as the module proxy, this machine's module download cache
// (GOPROXY=file://...), which go checks against go.sum as it would
// proxy.golang.org; no other Go setting.
func sourceCheckout(t *testing.T, goVersion string, withGoSum bool) (root, path string, env []string) {
	t.Helper()
	root, path = launcherCheckout(t)
	link(t, "go", path)
	fixture := filepath.Join(teststack.RepoRoot(), testdata, "launcher-fixture")
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		if f == "go.sum" && !withGoSum {
			continue
		}
		b, err := os.ReadFile(filepath.Join(fixture, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "go.mod" {
			b = regexp.MustCompile(`(?m)^go .*$`).ReplaceAll(b, []byte("go "+goVersion))
		}
		writeFile(t, filepath.Join(root, f), b, 0o644)
	}
	all, err := goEnv()
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range all {
		if mod, ok := strings.CutPrefix(kv, "GOMODCACHE="); ok {
			env = append(env, kv, "GOPROXY=file://"+filepath.Join(mod, "cache", "download"))
		}
		if strings.HasPrefix(kv, "GOCACHE=") {
			env = append(env, kv)
		}
	}
	if len(env) != 3 {
		t.Fatalf("go env %v lacks GOMODCACHE or GOCACHE", all)
	}
	return root, path, env
}

// localGoVersion is the version of this machine's go (the tests' own
// toolchain), which builds a module whose go line names it without a download.
func localGoVersion() string {
	return strings.TrimPrefix(strings.Fields(runtime.Version())[0], "go")
}

// stateEnv is what the runner gives the post step of a main step that wrote
// the GITHUB_STATE file at p: STATE_<name>=<value> for each entry.
func stateEnv(t *testing.T, p string) []string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for k, v := range teststack.ParseOutputs(string(b)) {
		env = append(env, "STATE_"+k+"="+v)
	}
	return env
}

// A self-hosted runner's disk is shared by its jobs: the tool cache, and the
// Go caches that actions/setup-go restores (a pull_request_target job can
// write caches in the default branch's scope). The launcher's source build
// must run nothing another job wrote there.
func TestLauncherRunsNoBinaryAnotherJobCouldWrite(t *testing.T) {
	t.Parallel()
	version := localGoVersion()
	root, path, env := sourceCheckout(t, version, true)
	// The runner's shared places, the Go caches filled as setup-go restores them.
	toolCache, modCache, buildCache := t.TempDir(), t.TempDir(), t.TempDir()
	env = append(env, "RUNNER_TOOL_CACHE="+toolCache, "GOMODCACHE="+modCache, "GOCACHE="+buildCache)
	download := exec.Command("go", "mod", "download")
	download.Dir, download.Env = root, append([]string{"PATH=" + path, "HOME=" + t.TempDir(), "GOFLAGS=-modcacherw"}, env...)
	if out, err := download.CombinedOutput(); err != nil {
		t.Fatalf("fill the shared module cache: %v\n%s", err, out)
	}

	const replacement = "replacement ran"
	fake := fakeBinary(`echo "` + replacement + `"`)
	// job runs the main and the post step of one job, with its own RUNNER_TEMP,
	// between runs a step of the same job between them, and returns what both printed.
	job := func(what string, between func(jobTemp string)) string {
		t.Helper()
		jobTemp, state := t.TempDir(), filepath.Join(t.TempDir(), "state")
		env := append(slices.Clone(env), "RUNNER_TEMP="+jobTemp)
		out, code := runLauncher(t, root, path, append(env, "GITHUB_STATE="+state)...)
		if strings.Contains(out, replacement) {
			t.Fatalf("%s, main step: ran what another job wrote:\n%s", what, out)
		}
		ran := "fixture ran: linux/" + runtime.GOARCH + " go" + version + " exe=" + jobTemp + "/ecr-build-cache-"
		if code != 0 || !strings.Contains(out, ran) || !strings.Contains(out, "Building ecr-build-cache from source") {
			t.Fatalf("%s, main step: exit %d, printed:\n%s\nwant a build from source and %q: the binary runs from this job's RUNNER_TEMP", what, code, out, ran)
		}
		between(jobTemp)
		pout, code := runLauncher(t, root, path, append(env, stateEnv(t, state)...)...)
		if code != 0 || !strings.Contains(pout, ran) || !strings.Contains(pout, "args=[post]") {
			t.Fatalf("%s, post step: exit %d, printed:\n%s\nwant %q with args=[post]", what, code, pout, ran)
		}
		if left, _ := os.ReadDir(jobTemp); len(left) != 0 {
			t.Errorf("%s: %d entries left in RUNNER_TEMP after the post step, want none", what, len(left))
		}
		return out + pout
	}
	nothing := func(string) {}

	// Job 1 builds; its post step runs the same binary without building again.
	if out := job("job 1", nothing); strings.Count(out, "Building ecr-build-cache from source") != 1 {
		t.Errorf("job 1 built %d times, want once: the post step runs the main step's binary\n%s", strings.Count(out, "Building ecr-build-cache from source"), out)
	}

	// Job 2 (untrusted code on the same runner) replaces every binary it finds
	// in the tool cache and the checksum beside it, and the dependency's source
	// in the shared module cache.
	err := filepath.WalkDir(toolCache, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if d.Name() == shippedName {
			writeFile(t, p, fake, 0o755)
			writeFile(t, filepath.Join(filepath.Dir(p), "checksums.txt"), []byte(sha256Hex(fake)+"  "+shippedName+"\n"), 0o644)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dep := filepath.Join(modCache, "golang.org", "x", "sync@v0.23.0", "errgroup", "errgroup.go")
	src, err := os.ReadFile(dep)
	if err != nil {
		t.Fatalf("the shared module cache lacks the dependency: %v", err)
	}
	poisoned := strings.Replace(string(src), "func (g *Group) Wait() error {", "func (g *Group) Wait() error {\n\tprintln(\""+replacement+"\")", 1)
	if poisoned == string(src) {
		t.Fatalf("%s has no Wait method to replace", dep)
	}
	writeFile(t, dep, []byte(poisoned), 0o644)

	// Job 3 builds afresh from go.sum-checked modules and runs none of it; a
	// step between its main and post steps replaces the binary in RUNNER_TEMP,
	// which the post step then does not run either.
	out := job("job 3", func(jobTemp string) {
		bins, err := filepath.Glob(filepath.Join(jobTemp, "*", shippedName))
		if err != nil || len(bins) != 1 {
			t.Fatalf("RUNNER_TEMP holds %v (%v) after the main step, want the binary for the post step", bins, err)
		}
		writeFile(t, bins[0], fake, 0o755)
	})
	if strings.Contains(out, replacement) {
		t.Errorf("job 3 ran what job 2 or a step in between wrote:\n%s", out)
	}
	if !strings.Contains(out, "::warning::ecr-build-cache: ") || !strings.Contains(out, "is not the binary the main step built") {
		t.Errorf("job 3's post step did not say that the main step's binary was replaced:\n%s", out)
	}
}

func TestLauncherSourceBuildNeedsRunnerTemp(t *testing.T) {
	t.Parallel()
	root, path, env := sourceCheckout(t, localGoVersion(), true)
	for _, temp := range []string{"", "relative/dir", filepath.Join(t.TempDir(), "gone")} {
		out, code := runLauncher(t, root, path, append(env, "RUNNER_TEMP="+temp)...)
		if code != 1 || !strings.Contains(out, "::error::ecr-build-cache: RUNNER_TEMP is ") || strings.Contains(out, "fixture ran") {
			t.Errorf("RUNNER_TEMP=%q: exit %d, printed:\n%s\nwant exit 1 and an error naming RUNNER_TEMP, never a build elsewhere", temp, code, out)
		}
	}
}

// archLevel is a GOAMD64/GOARM64 setting other than the default, which
// every machine of its architecture in use today runs.
func archLevel(t *testing.T) string {
	t.Helper()
	l, ok := map[string]string{"amd64": "GOAMD64=v2", "arm64": "GOARM64=v8.1"}[runtime.GOARCH]
	if !ok {
		t.Fatalf("no microarchitecture level setting known for %s", runtime.GOARCH)
	}
	return l
}

// controlBuild builds a copy of the checkout's module with go and env (no
// launcher) and returns what `go version -m` says of the binary.
func controlBuild(t *testing.T, root, path string, env []string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		if b, err := os.ReadFile(filepath.Join(root, f)); err == nil {
			writeFile(t, filepath.Join(dir, f), b, 0o644)
		}
	}
	env = append([]string{"PATH=" + path, "HOME=" + t.TempDir()}, env...) // later entries win
	for _, args := range [][]string{{"build", "-o", "bin", "."}, {"version", "-m", "bin"}} {
		cmd := exec.Command("go", args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("control: go %v with %v failed, so the test shows nothing: %v\n%s", args, env, err, out)
		}
		if args[0] == "version" {
			return string(out)
		}
	}
	return ""
}

func TestLauncherSourceBuildIgnoresInheritedGoSettings(t *testing.T) {
	t.Parallel()
	version := localGoVersion()
	// Settings a workflow or the runner's go env file could carry that would let
	// the build take modules go.sum does not vouch for, or build another way.
	hostile := []string{"GOFLAGS=-mod=mod", "GONOSUMDB=*", "GOSUMDB=off", "GOINSECURE=*", "GOPRIVATE=*", "GONOPROXY=*", "GOTOOLCHAIN=local", archLevel(t)}
	// The runner user's go env file (`go env -w` on a self-hosted runner).
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ".config", "go", "env"), []byte(strings.Join(hostile, "\n")+"\n"), 0o644)
	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"environment", append(hostile, "GONOSUMCHECK=1", "GOOS=windows")},
		{"go env file", []string{"HOME=" + home}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// go.sum lacks the dependency's hashes: -mod=readonly refuses that;
			// these settings would record the missing hashes unchecked.
			root, path, env := sourceCheckout(t, version, false)
			env = append(env, tc.env...)
			controlBuild(t, root, path, env)
			out, code := runLauncher(t, root, path, env...)
			if code != 1 || strings.Contains(out, "fixture ran") || !strings.Contains(out, "missing go.sum entry") ||
				!strings.Contains(out, "::error::ecr-build-cache: building from source failed") {
				t.Errorf("incomplete go.sum: exit %d, printed:\n%s\nwant the build refused for the missing go.sum entry (-mod=readonly), and exit 1", code, out)
			}

			// With go.sum complete the build runs, for this runner's platform,
			// with go.mod's toolchain and none of the settings above.
			root, path, env = sourceCheckout(t, version, true)
			env = append(env, tc.env...)
			if control := controlBuild(t, root, path, env); !strings.Contains(control, archLevel(t)) {
				t.Fatalf("control: %s does not reach a plain go build, so the test shows nothing:\n%s", archLevel(t), control)
			}
			out, code = runLauncher(t, root, path, env...)
			want := "fixture ran: linux/" + runtime.GOARCH + " go" + version + " "
			if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "CGO_ENABLED=0") || strings.Contains(out, archLevel(t)) {
				t.Errorf("complete go.sum: exit %d, printed:\n%s\nwant %q, CGO_ENABLED=0 and not %s", code, out, want, archLevel(t))
			}
		})
	}
}

func TestLauncherPinsTheToolchainToGoMod(t *testing.T) {
	t.Parallel()
	// go.mod names a release of this machine's Go other than its own, with no
	// proxy to download it from: a build that used the local go would succeed.
	local := localGoVersion()
	i := strings.LastIndexByte(local, '.')
	patch, err := strconv.Atoi(local[i+1:])
	if err != nil {
		t.Fatalf("local go %q is not a release", local)
	}
	other := fmt.Sprintf("%s.%d", local[:i], max(patch-1, 1))
	if other == local {
		other = local[:i] + ".2"
	}
	root, path, env := sourceCheckout(t, other, true)
	out, _ := runLauncher(t, root, path, env...)
	pinned := strings.Contains(out, "Building ecr-build-cache from source with go"+other+" (local go: go"+local+")") &&
		(strings.Contains(out, "go"+other+" for linux/"+runtime.GOARCH+": toolchain not available") || strings.Contains(out, "fixture ran: linux/"+runtime.GOARCH+" go"+other+" "))
	if !pinned {
		t.Errorf("printed:\n%s\nwant the build to ask for go%s (and fail without a proxy, or run with it)", out, other)
	}
}

// launched is a launcher started in the background, as the runner starts a step.
type launched struct {
	cmd  *exec.Cmd
	r    *teststack.ActionRun
	done chan struct{}
}

func launch(t *testing.T, root, path string, r *teststack.ActionRun, env ...string) *launched {
	t.Helper()
	l := &launched{cmd: startLauncher(t, root, path, r, env...), r: r, done: make(chan struct{})}
	go func() { _ = l.cmd.Wait(); close(l.done) }()
	t.Cleanup(func() {
		select {
		case <-l.done:
		default:
			_ = syscall.Kill(l.cmd.Process.Pid, syscall.SIGKILL)
			<-l.done
		}
	})
	return l
}

// waitFor polls cond until it holds; it fails t if the launcher ends first
// or after a generous deadline.
func (l *launched) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		select {
		case <-l.done:
			t.Fatalf("the launcher exited (%v) before %s:\n%s", l.cmd.ProcessState, what, l.r.StdoutTail(4000))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 3 minutes:\n%s", what, l.r.StdoutTail(4000))
		}
	}
}

// signal sends sig to the node process only, as the runner does on a cancel,
// and waits for the launcher to end; it returns the launcher's exit code.
func (l *launched) signal(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	if err := l.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.done:
	case <-time.After(time.Minute):
		t.Fatalf("the launcher still runs a minute after %v:\n%s", sig, l.r.StdoutTail(4000))
	}
	return l.cmd.ProcessState.ExitCode()
}

// proc identifies a process: its id and start time, so a reused id is not mistaken for it.
type proc struct {
	pid   int
	start string
}

// procStat returns a process's state, parent id and start time from /proc.
func procStat(pid int) (state string, ppid int, start string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, "", false
	}
	// The command name, in parentheses, may hold spaces: fields start after it.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 20 {
		return "", 0, "", false
	}
	fmt.Sscan(f[1], &ppid)
	return f[0], ppid, f[19], true
}

// childOf finds the process whose parent is pid.
func childOf(pid int) (proc, bool) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var p int
		if _, err := fmt.Sscan(e.Name(), &p); err != nil {
			continue
		}
		if state, ppid, start, ok := procStat(p); ok && ppid == pid && state != "Z" {
			return proc{p, start}, true
		}
	}
	return proc{}, false
}

// alive tells whether p still runs (a zombie has ended).
func (p proc) alive() bool {
	state, _, start, ok := procStat(p.pid)
	return ok && start == p.start && state != "Z"
}

// child waits for the launcher's child process (the action's binary) and returns it.
func (l *launched) child(t *testing.T) proc {
	t.Helper()
	var c proc
	l.waitFor(t, "child process", func() bool {
		var ok bool
		c, ok = childOf(l.cmd.Process.Pid)
		return ok
	})
	return c
}

// mustEnd fails t unless p has ended by deadline.
func mustEnd(t *testing.T, p proc, what string, deadline time.Time) {
	t.Helper()
	for p.alive() {
		if time.Now().After(deadline) {
			t.Errorf("%s (pid %d) still runs", what, p.pid)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestLauncherPassesTheRunnersSignalsToTheBinary(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
		code int
	}{{"SIGINT", syscall.SIGINT, 5}, {"SIGTERM", syscall.SIGTERM, 6}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root, path := launcherCheckout(t)
			ship(t, root, fakeBinary(`trap 'echo "fake got SIGINT"; exit 5' INT
trap 'echo "fake got SIGTERM"; exit 6' TERM
echo "fake waiting"
while :; do /bin/sleep 0.1; done`))
			r := teststack.NewActionRun(t, nil)
			l := launch(t, root, path, r)
			l.waitFor(t, "the binary's start", func() bool { return strings.Contains(r.Stdout(), "fake waiting") })
			child := l.child(t)
			code := l.signal(t, tc.sig)
			if out := r.Stdout(); code != tc.code || !strings.Contains(out, "fake got "+tc.name) || !strings.Contains(out, "ecr-build-cache: "+tc.name+" received") {
				t.Errorf("exit %d, printed:\n%s\nwant the binary to get %s and its exit code %d passed on", code, out, tc.name, tc.code)
			}
			mustEnd(t, child, "the binary", time.Now())
		})
	}
}

func TestLauncherKillsABinaryThatIgnoresTheCancel(t *testing.T) {
	t.Parallel()
	root, path := launcherCheckout(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	// It ignores both signals, and has started a process of its own.
	ship(t, root, fakeBinary(`trap '' INT TERM
/bin/sleep 1000 &
echo $! > `+pidFile+`
echo "fake waiting"
wait`))
	r := teststack.NewActionRun(t, nil)
	l := launch(t, root, path, r)
	l.waitFor(t, "the binary's start", func() bool { return strings.Contains(r.Stdout(), "fake waiting") })
	child := l.child(t)
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var sleepPid int
	fmt.Sscan(string(b), &sleepPid)
	_, _, start, ok := procStat(sleepPid)
	if !ok {
		t.Fatalf("the binary's own process %d is not running", sleepPid)
	}
	grandchild := proc{sleepPid, start}

	// The runner's ladder: SIGINT, then SIGTERM; the runner kills node itself
	// 10 s after the SIGINT, so everything must be gone by then.
	signalled := time.Now()
	if err := l.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	code := l.signal(t, syscall.SIGTERM)
	if out := r.Stdout(); code == 0 || !strings.Contains(out, "::error::ecr-build-cache: still running 8s after SIGINT: killed") {
		t.Errorf("exit %d, printed:\n%s\nwant a non-zero exit and the kill reported", code, out)
	}
	mustEnd(t, child, "the binary", signalled.Add(10*time.Second))
	mustEnd(t, grandchild, "the process the binary started", signalled.Add(10*time.Second))
}
