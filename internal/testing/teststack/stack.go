// Package teststack starts the local, loopback-only stack that tests, `make demo`
// and benchmarks build against: a real registry (Debian's docker-registry, CNCF
// distribution 2.8) and a real buildkitd (runc executor), plus a busybox base image
// pushed to that registry, since nothing can be pulled from Docker Hub here.
//
// What the stack needs is installed by hack/install-stack.sh (apt packages, and
// buildkitd built from the BuildKit module version that go.mod pins).
package teststack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/buildkit/client"
)

// Stack is a running registry and buildkitd.
type Stack struct {
	// Registry is the registry's host:port; it speaks plain HTTP.
	Registry string
	// BuildkitAddr is the buildkitd address, unix://...
	BuildkitAddr string
	// BaseImage is a busybox image in Registry to use in FROM lines.
	BaseImage string
	// Dir holds the stack's state and logs.
	Dir string
	// RegistryLog is the registry's access log (one line per request).
	RegistryLog string
	// ToolDirs are the directories holding buildkitd, buildctl (and act when asked for).
	ToolDirs []string
	// TLSAddr is buildkitd's tcp://127.0.0.1:PORT address with mTLS, and Certs
	// its CA and a client certificate; set with Options.TLS.
	TLSAddr string
	Certs   Certs
	// DebugAddr is buildkitd's debug HTTP address, host:port (/debug/pprof/...);
	// set with Options.Debug.
	DebugAddr string

	procs    []proc
	buildkit *exec.Cmd
}

type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// Options tune Start.
type Options struct {
	// Log receives install and start-up messages; nil discards them.
	Log io.Writer
	// WithAct also builds nektos/act (for end-to-end tests).
	WithAct bool
	// TLS makes buildkitd also listen on TCP with mTLS, as a remote builder does.
	TLS bool
	// Debug makes buildkitd serve its debug handlers (pprof) on a loopback port.
	Debug bool
}

// RepoRoot is the repository's top directory, found from this file's location so
// that tests, `go run` and benchmarks agree whatever their working directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// Install runs hack/install-stack.sh and returns the tool directories it reports.
func Install(ctx context.Context, log io.Writer, withAct bool) ([]string, error) {
	args := []string{filepath.Join(RepoRoot(), "hack", "install-stack.sh")}
	if withAct {
		args = append(args, "--act")
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", args...)
	cmd.Stdout = &out
	cmd.Stderr = log
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("install stack tools (hack/install-stack.sh): %w", err)
	}
	return strings.Split(strings.TrimSpace(out.String()), ":"), nil
}

// Start installs what is missing, then starts a registry and buildkitd in a new
// temporary directory. Close stops them and removes the directory.
func Start(ctx context.Context, opt Options) (_ *Stack, err error) {
	if opt.Log == nil {
		opt.Log = io.Discard
	}
	tools, err := Install(ctx, opt.Log, opt.WithAct)
	if err != nil {
		return nil, err
	}
	// Short path: buildkitd's unix socket path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "ebc-stack-")
	if err != nil {
		return nil, err
	}
	s := &Stack{Dir: dir, ToolDirs: tools, RegistryLog: filepath.Join(dir, "registry.log")}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.startRegistry(ctx); err != nil {
		return nil, err
	}
	if err := s.startBuildkitd(ctx, opt); err != nil {
		return nil, err
	}
	if err := s.pushBaseImage(ctx, opt.Log); err != nil {
		return nil, err
	}
	return s, nil
}

// Tool returns the path of a tool built by install-stack.sh.
func (s *Stack) Tool(name string) string {
	for _, d := range s.ToolDirs {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return name
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (s *Stack) spawn(logName string, name string, args ...string) error {
	p, err := startProc(filepath.Join(s.Dir, logName), name, args...)
	if err != nil {
		return err
	}
	s.procs = append(s.procs, p)
	return nil
}

// startProc starts a daemon logging to logPath, in its own process group so
// that stop ends it and whatever it started.
func startProc(logPath, name string, args ...string) (proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return proc{}, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return proc{}, fmt.Errorf("start %s: %w", name, err)
	}
	p := proc{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.exited) }()
	return p, nil
}

// stop ends the process group: SIGTERM, then SIGKILL after 10 s.
func (p proc) stop() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

func (s *Stack) startRegistry(ctx context.Context) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	conf := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(s.Dir, "registry"), addr)
	confPath := filepath.Join(s.Dir, "registry.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return err
	}
	if err := s.spawn("registry.log", "docker-registry", "serve", confPath); err != nil {
		return err
	}
	s.Registry = addr
	return waitFor(ctx, "registry at "+addr, s.RegistryLog, func() error {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

// RegistryConfig is the buildkitd.toml entry that lets a daemon pull from the
// stack's plain-HTTP registry.
func (s *Stack) RegistryConfig() string {
	return fmt.Sprintf("[registry.%q]\n  http = true\n  insecure = true\n", s.Registry)
}

// buildkitdArgs are the arguments of a buildkitd with its state in dir.
func buildkitdArgs(dir, addr string) []string {
	return []string{"--root", filepath.Join(dir, "buildkit"), "--addr", addr, "--oci-worker=true", "--containerd-worker=false"}
}

// waitBuildkitd waits until the buildkitd at addr answers.
func waitBuildkitd(ctx context.Context, addr, logPath string) error {
	return waitFor(ctx, "buildkitd at "+addr, logPath, func() error {
		c, err := client.New(ctx, addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.ListWorkers(ctx)
		return err
	})
}

func (s *Stack) startBuildkitd(ctx context.Context, opt Options) error {
	// FROM lines pull the base image over plain HTTP from the stack's registry.
	confPath := filepath.Join(s.Dir, "buildkitd.toml")
	if err := os.WriteFile(confPath, []byte(s.RegistryConfig()), 0o644); err != nil {
		return err
	}
	s.BuildkitAddr = "unix://" + filepath.Join(s.Dir, "buildkitd.sock")
	args := append([]string{"--config", confPath}, buildkitdArgs(s.Dir, s.BuildkitAddr)...)
	if opt.Debug {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		s.DebugAddr = addr
		args = append(args, "--debugaddr", addr)
	}
	if opt.TLS {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		if s.Certs, err = GenerateCerts(filepath.Join(s.Dir, "tls")); err != nil {
			return err
		}
		s.TLSAddr = "tcp://" + addr
		args = append(args, "--addr", s.TLSAddr,
			"--tlscacert", s.Certs.CA, "--tlscert", s.Certs.ServerCert, "--tlskey", s.Certs.ServerKey)
	}
	if err := s.spawn("buildkitd.log", s.Tool("buildkitd"), args...); err != nil {
		return err
	}
	s.buildkit = s.procs[len(s.procs)-1].cmd
	return waitBuildkitd(ctx, s.BuildkitAddr, filepath.Join(s.Dir, "buildkitd.log"))
}

// waitFor polls ready until it succeeds, for up to a minute.
func waitFor(ctx context.Context, what, logPath string, ready func() error) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			tail, _ := os.ReadFile(logPath)
			if len(tail) > 2000 {
				tail = tail[len(tail)-2000:]
			}
			return fmt.Errorf("%s did not come up: %w\n%s", what, err, tail)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pushBaseImage builds a busybox image from Debian's static busybox and pushes it
// as <registry>/base:busybox, with buildctl so the stack does not depend on the
// code under test.
func (s *Stack) pushBaseImage(ctx context.Context, log io.Writer) error {
	dir := filepath.Join(s.Dir, "base")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("read static busybox (apt-get install busybox-static): %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "busybox"), bb, 0o755); err != nil {
		return err
	}
	df := "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return err
	}
	s.BaseImage = s.Registry + "/base:busybox"
	cmd := exec.CommandContext(ctx, s.Tool("buildctl"), "--addr", s.BuildkitAddr, "build",
		"--progress", "plain",
		"--frontend", "dockerfile.v0",
		"--local", "context="+dir, "--local", "dockerfile="+dir,
		"--output", "type=image,name="+s.BaseImage+",push=true,registry.insecure=true")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("push base image: %w\n%s", err, out)
	}
	fmt.Fprintf(log, "teststack: base image %s pushed\n", s.BaseImage)
	return nil
}

// Prune empties buildkitd's cache, as on a fresh CI runner. Records are released
// asynchronously after a prune, so it waits until disk usage reports none (as
// BuildKit's own cache tests do); a build started earlier can race the cleanup.
func (s *Stack) Prune(ctx context.Context) error {
	c, err := client.New(ctx, s.BuildkitAddr)
	if err != nil {
		return err
	}
	defer c.Close()
	for range 3 {
		if err := c.Prune(ctx, nil, client.PruneAll); err != nil {
			return fmt.Errorf("prune buildkitd: %w", err)
		}
		for range 20 {
			du, err := c.DiskUsage(ctx)
			if err != nil {
				return fmt.Errorf("buildkitd disk usage: %w", err)
			}
			if len(du) == 0 {
				return nil
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	return errors.New("prune buildkitd: records remain after three prunes")
}

// BuildkitdCPU is the CPU time buildkitd has used so far (user and system,
// its own threads; not the containers it ran): a machine shared with other
// work slows a build's wall time far more than its CPU time.
func (s *Stack) BuildkitdCPU() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.buildkit.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("buildkitd /proc stat: %d fields", len(f))
	}
	var ticks int64
	for _, v := range f[11:13] { // utime, stime: fields 14 and 15
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("buildkitd /proc stat: %w", err)
		}
		ticks += n
	}
	// /proc counts in USER_HZ, 100 on Linux.
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// Close stops the daemons and removes the stack's directory.
func (s *Stack) Close() error {
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].stop()
	}
	return removeDir(s.Dir)
}

// removeDir removes a daemon's directory, unmounting first what buildkitd (or
// dockerd) leaves mounted under it when it was killed.
func removeDir(dir string) error {
	var errs []error
	if out, err := exec.Command("sh", "-c", "grep -o ' "+dir+"[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l").CombinedOutput(); err != nil {
		errs = append(errs, fmt.Errorf("unmount %s: %w: %s", dir, err, out))
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
