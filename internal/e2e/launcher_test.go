package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ecr-build-cache/ecr-build-cache/internal/teststack"
)

// launcherCheckout is an action checkout holding only dist/launcher.js (plus
// what the test adds), with a PATH that has node and nothing else.
func launcherCheckout(t *testing.T) (root, path string) {
	t.Helper()
	root = t.TempDir()
	js, err := os.ReadFile(filepath.Join(teststack.RepoRoot(), "dist", "launcher.js"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "dist"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "dist", "launcher.js"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed to run the launcher: %v", err)
	}
	path = t.TempDir()
	if err := os.Symlink(node, filepath.Join(path, "node")); err != nil {
		t.Fatal(err)
	}
	return root, path
}

func runLauncher(t *testing.T, root, path string, env ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(path, "node"), filepath.Join(root, "dist", "launcher.js"))
	cmd.Env = append([]string{"PATH=" + path, "HOME=" + t.TempDir(), "RUNNER_TOOL_CACHE=" + t.TempDir(), "AWS_EC2_METADATA_DISABLED=true"}, env...)
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return string(out), cmd.ProcessState.ExitCode()
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
	if err := os.WriteFile(filepath.Join(root, "dist", "ecr-build-cache-linux-"+runtime.GOARCH), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state")

	// Main step without inputs: the binary's failure is the step's exit code.
	out, code := runLauncher(t, root, path, "GITHUB_STATE="+state, "GITHUB_OUTPUT="+filepath.Join(t.TempDir(), "out"))
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
