package teststack

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// StartBuildkitd starts one more buildkitd for a test, with config as its
// buildkitd.toml and args(configPath) as its further arguments (how
// buildkitconn.Daemon.Args gives them), and returns its unix:// address. It
// stops at the test's end.
func (s *Stack) StartBuildkitd(t testing.TB, config string, args func(configPath string) []string) string {
	t.Helper()
	// Short path: the unix socket's path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "ebc-bk-")
	if err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "buildkitd.toml")
	if err := os.WriteFile(confPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := "unix://" + filepath.Join(dir, "buildkitd.sock")
	logPath := startForTest(t, dir, "buildkitd.log", s.Tool("buildkitd"), append(buildkitdArgs(dir, addr), args(confPath)...)...)
	if err := waitBuildkitd(context.Background(), addr, logPath); err != nil {
		t.Fatal(err)
	}
	return addr
}

// StartDocker starts a Docker engine (Debian's docker.io) off the host's
// network, and returns the DOCKER_HOST that reaches it. It stops at the test's
// end.
func StartDocker(t testing.TB) string {
	t.Helper()
	SkipShort(t)
	if _, err := exec.LookPath("dockerd"); err != nil {
		t.Fatalf("no dockerd (hack/install-stack.sh installs docker.io): %v", err)
	}
	dir, err := os.MkdirTemp("", "ebc-docker-")
	if err != nil {
		t.Fatal(err)
	}
	host := "unix://" + filepath.Join(dir, "docker.sock")
	logPath := startForTest(t, dir, "dockerd.log", "dockerd", "--iptables=false", "--bridge=none",
		"--data-root", filepath.Join(dir, "root"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"), "-H", host)
	err = waitFor(context.Background(), "dockerd at "+host, logPath, func() error {
		out, err := Docker(host, "version", "--format", "{{.Server.Version}}")
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return host
}

// Docker runs the docker CLI against the engine at host.
func Docker(host string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+host)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// startForTest starts a daemon with its state in dir, logging to logName
// there, and stops it and removes dir at the test's end. It returns the log's
// path.
func startForTest(t testing.TB, dir, logName, name string, args ...string) string {
	t.Helper()
	logPath := filepath.Join(dir, logName)
	p, err := startProc(logPath, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop()
		if err := removeDir(dir); err != nil {
			t.Error(err)
		}
	})
	return logPath
}
