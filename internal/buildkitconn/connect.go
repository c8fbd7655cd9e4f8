package buildkitconn

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/connhelper/dockercontainer"
)

// ConnectTimeout bounds how long an unreachable buildkitd can hold up a run.
const ConnectTimeout = 30 * time.Second

// Connect dials buildkitd and checks that it answers, so that a wrong address
// fails now with a clear message rather than deep inside the build.
func Connect(ctx context.Context, ep Endpoint) (*client.Client, error) {
	var opts []client.ClientOpt
	var said lockedBuffer // what docker exec printed, for the error
	if ep.TLS.CACert != "" || ep.TLS.ServerName != "" {
		opts = append(opts, client.WithServerConfig(ep.TLS.ServerName, ep.TLS.CACert))
	}
	if ep.TLS.Cert != "" {
		opts = append(opts, client.WithCredentials(ep.TLS.Cert, ep.TLS.Key))
	}
	if strings.HasPrefix(ep.Addr, "docker-container://") {
		u, err := url.Parse(ep.Addr)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", ep.Addr, err)
		}
		sp, err := dockercontainer.SpecFromURL(u)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", ep.Addr, err)
		}
		opts = append(opts, client.WithContextDialer(dockerCLI{getenv: ep.env()}.dialStdio(sp, &said)))
	}
	c, err := client.New(ctx, ep.Addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to buildkitd at %s: %w", ep.Addr, err)
	}
	pctx, cancel := context.WithTimeout(ctx, ConnectTimeout)
	defer cancel()
	if _, err := c.ListWorkers(pctx); err != nil {
		c.Close()
		if s := said.String(); s != "" {
			err = fmt.Errorf("%w; docker exec said: %s", err, s)
		}
		what := "does not answer"
		if pctx.Err() != nil && ctx.Err() == nil {
			what = fmt.Sprintf("did not answer within %s", ConnectTimeout)
		}
		return nil, fmt.Errorf("buildkitd at %s %s (is it running, and is the address right? set the buildkit-host input or BUILDKIT_HOST): %w", ep.Addr, what, err)
	}
	return c, nil
}

// dialStdio reaches the buildkitd in a container through `docker exec -i
// <container> buildctl dial-stdio`, as BuildKit's docker-container helper does,
// but with the run's docker CLI and DOCKER_* variables rather than the
// process's.
func (d dockerCLI) dialStdio(sp *dockercontainer.Spec, stderr *lockedBuffer) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, _ string) (net.Conn, error) {
		var args []string
		if sp.Context != "" {
			args = append(args, "--context="+sp.Context)
		}
		// Not ctx: the connection outlives the dial; closing it ends the process.
		cmd, err := d.command(context.WithoutCancel(ctx), append(args, "exec", "-i", sp.Container, "buildctl", "dial-stdio")...)
		if err != nil {
			return nil, err
		}
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("socketpair: %w", err)
		}
		local, remote := os.NewFile(uintptr(fds[0]), "buildkitd"), os.NewFile(uintptr(fds[1]), "docker exec")
		defer local.Close()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = remote, remote, stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		err = cmd.Start()
		remote.Close()
		if err != nil {
			return nil, fmt.Errorf("docker exec %s buildctl dial-stdio: %w", sp.Container, err)
		}
		go func() { _ = cmd.Wait() }()
		return net.FileConn(local)
	}
}

// lockedBuffer is a bytes.Buffer that exec's copier writes while Connect reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is what was written, trimmed.
func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.TrimSpace(l.b.String())
}
