package teststack

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
// end. Its containers run through runcWithoutSysResource, so that privileged
// ones start here.
func StartDocker(t testing.TB) string {
	t.Helper()
	SkipShort(t)
	dir, err := os.MkdirTemp("", "ebc-docker-")
	if err != nil {
		t.Fatal(err)
	}
	stop := func() {}
	t.Cleanup(func() {
		stop()
		if err := removeDir(dir); err != nil {
			t.Error(err)
		}
	})
	host, stop, err := StartDockerIn(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return host
}

// StartDockerIn starts dockerd with its state in dir and waits until it
// answers, for programs that have no testing.TB (the benchmarks); stop it with
// stop.
func StartDockerIn(ctx context.Context, dir string) (host string, stop func(), err error) {
	stop = func() {}
	if _, err := exec.LookPath("dockerd"); err != nil {
		return "", stop, fmt.Errorf("no dockerd (hack/install-stack.sh installs docker.io): %w", err)
	}
	runtime, err := writeRuntime(dir)
	if err != nil {
		return "", stop, err
	}
	host = "unix://" + filepath.Join(dir, "docker.sock")
	logPath := filepath.Join(dir, "dockerd.log")
	p, err := startProc(logPath, "dockerd", "--iptables=false", "--bridge=none",
		"--add-runtime", "ebc-runc="+runtime, "--default-runtime", "ebc-runc",
		"--data-root", filepath.Join(dir, "root"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"), "-H", host)
	if err != nil {
		return "", stop, err
	}
	err = waitFor(ctx, "dockerd at "+host, logPath, func() error {
		out, err := Docker(host, "version", "--format", "{{.Server.Version}}")
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	})
	return host, p.stop, err
}

// runcWithoutSysResource is the Docker engine's runtime: runc, after removing
// CAP_SYS_RESOURCE from the container's (config.json, for runc create) and an
// exec's (--process) capabilities. These machines' capability bounding set lacks
// it, so runc cannot grant it and a --privileged container, which asks for every
// capability, fails with "unable to apply caps: operation not permitted". The
// product is untouched: GitHub's runners have the capability.
const runcWithoutSysResource = `#!/bin/sh
prev=
for a in "$@"; do
  f=
  case $prev in --bundle|-b) f=$a/config.json;; --process) f=$a;; esac
  case $a in --bundle=*) f=${a#--bundle=}/config.json;; --process=*) f=${a#--process=};; esac
  if [ -n "$f" ] && [ -f "$f" ]; then
    sed -i -e 's/"CAP_SYS_RESOURCE",[[:space:]]*//g' -e 's/,[[:space:]]*"CAP_SYS_RESOURCE"//g' -e 's/"CAP_SYS_RESOURCE"//g' "$f"
  fi
  prev=$a
done
exec RUNC "$@"
`

func writeRuntime(dir string) (string, error) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		return "", fmt.Errorf("no runc (hack/install-stack.sh installs it): %w", err)
	}
	p := filepath.Join(dir, "runc-without-sys-resource")
	return p, os.WriteFile(p, []byte(strings.Replace(runcWithoutSysResource, "RUNC", runc, 1)), 0o755)
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
