// Package buildkitconn decides which BuildKit daemon a run builds on, in the
// order the action documents:
//
//  1. the buildkit-host input;
//  2. $BUILDKIT_HOST;
//  3. the builder input: a buildx builder, as docker/setup-buildx-action creates
//     and names it (read from buildx's store, never changed);
//  4. $BUILDX_BUILDER, which buildx itself reads the same way;
//  5. buildx's current builder, as docker/build-push-action builds on it:
//     setup-buildx-action's `docker buildx create --use` makes its builder
//     current (see current.go);
//  6. a Docker engine: a pinned moby/buildkit container started for this job,
//     which the post step removes (see Stop);
//  7. otherwise an error listing these options.
//
// tcp:// addresses take mTLS files (the buildkit-tls-* inputs, or a buildx
// remote builder's cacert/cert/key), which is how one buildkitd serves many runners.
package buildkitconn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is the BuildKit image started when only a Docker engine is available,
// pinned to the BuildKit version this action's client is built with. Release
// builds pin it by digest too (-ldflags -X, resolved by the release workflow).
var Image = "moby/buildkit:v0.34.2"

// StateContainer is the GITHUB_STATE key under which the main step records a
// container it started, so that the post step (STATE_buildkit_container) removes it.
const StateContainer = "buildkit_container"

// pullTimeout bounds docker create, which pulls the image (tens of MB) when the
// engine lacks it.
const pullTimeout = 5 * time.Minute

// containerPrefix starts the name of every container this action starts.
const containerPrefix = "ecr-build-cache-buildkit-"

// TLS are mTLS files for a tcp:// buildkitd.
type TLS struct {
	CACert, Cert, Key, ServerName string
}

func (t TLS) set() bool { return t != TLS{} }

// Options are the connection inputs and the run's environment.
type Options struct {
	Host    string // buildkit-host input
	Builder string // builder input: a buildx builder name
	TLS     TLS    // buildkit-tls-* inputs
	// Starting is called with the name of a container Resolve is about to start,
	// before it exists: the main step saves it as StateContainer then, so the
	// post step removes it even when the job is cancelled mid-start.
	Starting func(container string) error
	// AllowInsecureTCP allows tcp:// without TLS to a non-loopback address.
	AllowInsecureTCP bool
	// HostNetwork runs a started BuildKit container on the runner's network:
	// RUN steps then reach the runner's localhost and instance metadata.
	HostNetwork bool
	// Daemon configures a started container's buildkitd; it is an error when
	// the run builds on a daemon this action does not start.
	Daemon Daemon
	// Platforms are the build's platforms: a multi-node buildx builder builds
	// on the node that serves them.
	Platforms []string
	// Getenv reads the run's environment: BUILDKIT_HOST, DOCKER_CONFIG and HOME
	// (buildx's store), PATH and DOCKER_* (the docker CLI). Never the process's
	// own, so that tests stay parallel.
	Getenv func(string) string
}

// Endpoint is where the run builds.
type Endpoint struct {
	Addr string // unix:///path, tcp://host:port or docker-container://name
	TLS  TLS    // for tcp:// with mTLS
	// Source says how Addr was chosen, for the log.
	Source string
	// Container is set when Resolve started a BuildKit container; the main step
	// saves it as StateContainer and the post step passes it to Stop.
	Container string
	// Notice and Warning are for the log: why the run builds on buildx's
	// current builder, or why not on the one it has.
	Notice, Warning string
	// getenv is the run's environment, for the docker CLI that reaches a
	// docker-container:// address.
	getenv func(string) string
}

func (ep Endpoint) env() func(string) string {
	if ep.getenv == nil {
		return func(string) string { return "" }
	}
	return ep.getenv
}

// Resolve picks the BuildKit daemon for this run. It may start a container (see
// Endpoint.Container), which is ready when Resolve returns.
func Resolve(ctx context.Context, opt Options) (Endpoint, error) {
	if opt.Getenv == nil {
		opt.Getenv = func(string) string { return "" }
	}
	ep, err := resolve(ctx, opt)
	ep.getenv = opt.Getenv
	return ep, err
}

func resolve(ctx context.Context, opt Options) (Endpoint, error) {
	getenv := opt.Getenv
	notStarted := func(source string) error {
		if opt.Daemon.Set() {
			return fmt.Errorf("buildkit-image, buildkitd-config-inline and buildkitd-flags configure the BuildKit container this action starts, "+
				"but this run builds on %s: configure that daemon instead, or remove them", source)
		}
		return nil
	}
	switch {
	case opt.Host != "":
		if err := notStarted("the buildkit-host input's daemon"); err != nil {
			return Endpoint{}, err
		}
		return fromAddr(opt.Host, "buildkit-host input", opt.TLS, opt.AllowInsecureTCP)
	case getenv("BUILDKIT_HOST") != "":
		if err := notStarted("BUILDKIT_HOST's daemon"); err != nil {
			return Endpoint{}, err
		}
		return fromAddr(getenv("BUILDKIT_HOST"), "BUILDKIT_HOST", opt.TLS, opt.AllowInsecureTCP)
	}
	if opt.TLS.set() {
		return Endpoint{}, errors.New("buildkit-tls-* inputs: they secure a tcp:// buildkitd, so set buildkit-host (or BUILDKIT_HOST) to its tcp://host:port address")
	}
	if opt.Builder != "" {
		if err := notStarted("the buildx builder " + opt.Builder); err != nil {
			return Endpoint{}, err
		}
		return fromBuilder(ctx, opt.Builder, opt.Platforms, getenv, opt.AllowInsecureTCP)
	}
	if name := getenv("BUILDX_BUILDER"); name != "" {
		// Set by hand (setup-buildx-action does not export it): as explicit as the builder input.
		if err := notStarted("the buildx builder " + name + " ($BUILDX_BUILDER)"); err != nil {
			return Endpoint{}, err
		}
		ep, err := fromBuilder(ctx, name, opt.Platforms, getenv, opt.AllowInsecureTCP)
		if err != nil {
			return Endpoint{}, fmt.Errorf("$BUILDX_BUILDER: %w", err)
		}
		ep.Source += " named by $BUILDX_BUILDER"
		return ep, nil
	}
	current, warning := useCurrentBuilder(ctx, opt)
	if current.Addr != "" {
		return current, nil
	}
	docker := dockerCLI{getenv: getenv}
	engineErr := docker.ping(ctx)
	if engineErr == nil {
		ep, err := startContainer(ctx, docker, opt)
		if warning != "" {
			ep.Warning = warning + "; building on a BuildKit container started for this job instead"
		}
		return ep, err
	}
	if warning != "" {
		engineErr = fmt.Errorf("%w; and %s", engineErr, warning)
	}
	return Endpoint{}, fmt.Errorf("no BuildKit daemon to build on. Give one of:\n"+
		"  - buildkit-host: unix:///run/buildkit/buildkitd.sock, tcp://host:1234 (with buildkit-tls-* for mTLS) or docker-container://name\n"+
		"  - the BUILDKIT_HOST environment variable, same forms\n"+
		"  - builder: the name output of docker/setup-buildx-action\n"+
		"  - a Docker engine on the runner (GitHub-hosted Linux runners have one), to start %s for this job\n"+
		"(no Docker engine answered: %v)", opt.Daemon.image(), engineErr)
}

var schemes = []string{"unix://", "tcp://", "docker-container://"}

// CheckAddr tells whether addr is a BuildKit address this action can reach,
// and refuses plain TCP to another host unless allowInsecure: the build session
// carries registry passwords, secrets and the build context.
func CheckAddr(addr string, tls TLS, allowInsecure bool) error {
	if !slices.ContainsFunc(schemes, func(s string) bool { return strings.HasPrefix(addr, s) }) {
		return fmt.Errorf("%q: use a unix://, tcp:// or docker-container:// address", addr)
	}
	if !strings.HasPrefix(addr, "tcp://") || tls.set() || allowInsecure {
		return nil
	}
	u, err := url.Parse(addr)
	switch {
	case err != nil || u.Hostname() == "":
		return fmt.Errorf("%q is not a tcp://host:port address", addr)
	case !isLoopback(u.Hostname()):
		return fmt.Errorf("%q is plain TCP to another host: the session would carry registry passwords, secrets and the build context in clear; "+
			"set buildkit-tls-ca-cert (and buildkit-tls-cert/buildkit-tls-key for mTLS), or buildkit-allow-insecure-tcp: true on a network you trust", addr)
	}
	return nil
}

// isLoopback tells a host name or address that cannot leave the machine.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func fromAddr(addr, source string, tls TLS, allowInsecure bool) (Endpoint, error) {
	if err := CheckAddr(addr, tls, allowInsecure); err != nil {
		return Endpoint{}, fmt.Errorf("%s: %w", source, err)
	}
	if tls.set() && !strings.HasPrefix(addr, "tcp://") {
		return Endpoint{}, fmt.Errorf("buildkit-tls-* / TLS files: %s %q is not a tcp:// address; mTLS applies to tcp:// only", source, addr)
	}
	return Endpoint{
		Addr:   addr,
		TLS:    tls,
		Source: source,
	}, nil
}

// nodeGroup is the part of a buildx builder ($DOCKER_CONFIG/buildx/instances/<name>,
// JSON of buildx's store.NodeGroup) that tells how to reach its nodes.
type nodeGroup struct {
	Name   string
	Driver string
	Nodes  []node
	// allowInsecure allows a remote node's plain TCP (buildkit-allow-insecure-tcp).
	allowInsecure bool
	getenv        func(string) string // the run's, for the docker CLI
}

type node struct {
	Name       string
	Endpoint   string
	Platforms  []ocispecs.Platform // as given to buildx create --platform
	DriverOpts map[string]string
}

// builderName is buildx's rule for builder names; it also keeps the name from
// leaving the store directory.
var builderName = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9.\-_+]*$`)

func fromBuilder(ctx context.Context, name string, platforms []string, getenv func(string) string, allowInsecure bool) (Endpoint, error) {
	if !builderName.MatchString(name) {
		return Endpoint{}, fmt.Errorf("builder: %q is not a buildx builder name", name)
	}
	dir := buildxDir(getenv)
	if dir == "" {
		return Endpoint{}, fmt.Errorf("builder %q: no buildx store to read it from: neither BUILDX_CONFIG, DOCKER_CONFIG nor HOME is set", name)
	}
	// buildx stores builders under their lowercased name.
	store := filepath.Join(dir, "instances", strings.ToLower(name))
	b, err := os.ReadFile(store)
	if err != nil {
		return Endpoint{}, fmt.Errorf("builder %q: not found in buildx's store (%w); create it before this step, e.g. with docker/setup-buildx-action, and keep DOCKER_CONFIG the same", name, err)
	}
	var ng nodeGroup
	if err := json.Unmarshal(b, &ng); err != nil {
		return Endpoint{}, fmt.Errorf("builder %q: read %s: %w", name, store, err)
	}
	if len(ng.Nodes) == 0 {
		return Endpoint{}, fmt.Errorf("builder %q has no nodes", name)
	}
	ng.allowInsecure, ng.getenv = allowInsecure, getenv
	i, err := pickNode(ctx, ng, platforms)
	if err != nil {
		return Endpoint{}, err
	}
	return ng.endpoint(ng.Nodes[i])
}

// endpoint is how to reach one of the builder's nodes.
func (ng nodeGroup) endpoint(n node) (Endpoint, error) {
	source := fmt.Sprintf("buildx builder %s (%s driver, node %s)", ng.Name, ng.Driver, n.Name)
	switch ng.Driver {
	case "docker-container":
		if !builderName.MatchString(n.Name) {
			return Endpoint{}, fmt.Errorf("builder %q: node %q is not a buildx node name", ng.Name, n.Name)
		}
		// buildx names the node's container buildx_buildkit_<node>; its endpoint
		// is a docker context name, or a docker host URL for the default context.
		addr := "docker-container://buildx_buildkit_" + n.Name
		if n.Endpoint != "" && n.Endpoint != "default" && !strings.Contains(n.Endpoint, "://") {
			addr += "?context=" + url.QueryEscape(n.Endpoint)
		}
		return Endpoint{Addr: addr, Source: source, getenv: ng.getenv}, nil
	case "remote":
		o := n.DriverOpts
		return fromAddr(n.Endpoint, source, TLS{CACert: o["cacert"], Cert: o["cert"], Key: o["key"], ServerName: o["servername"]}, ng.allowInsecure)
	default:
		return Endpoint{}, fmt.Errorf("builder %q uses the %s driver, which this action cannot reach; use a docker-container builder (docker/setup-buildx-action's default) or a remote one, or set buildkit-host", ng.Name, ng.Driver)
	}
}

// dockerCLI runs the docker CLI with the run's environment.
type dockerCLI struct{ getenv func(string) string }

// dockerEnv are the variables that choose the docker CLI's engine and config.
var dockerEnv = []string{"PATH", "HOME", "XDG_RUNTIME_DIR", "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "DOCKER_API_VERSION"}

func (d dockerCLI) run(ctx context.Context, args ...string) (string, error) {
	return d.runWithInput(ctx, nil, args...)
}

// command is the docker CLI with the run's environment.
func (d dockerCLI) command(ctx context.Context, args ...string) (*exec.Cmd, error) {
	path, err := d.lookPath()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	for _, k := range dockerEnv {
		if v := d.getenv(k); v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	return cmd, nil
}

func (d dockerCLI) runWithInput(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd, err := d.command(ctx, args...)
	if err != nil {
		return "", err
	}
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", args[0], err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// lookPath finds docker on the run's PATH (exec.LookPath would read the process's).
func (d dockerCLI) lookPath() (string, error) {
	for _, dir := range filepath.SplitList(d.getenv("PATH")) {
		p := filepath.Join(dir, "docker")
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("no docker CLI on PATH")
}

// ping tells whether a Docker engine answers.
func (d dockerCLI) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err := d.run(ctx, "version", "--format", "{{.Server.Version}}")
	return err
}

// startContainer starts the daemon's image for this job, as buildx's
// docker-container driver does (create, copy the config in, start), and waits
// until its buildkitd answers. On GitHub-hosted runners this pulls the image
// (tens of MB) first.
func startContainer(ctx context.Context, d dockerCLI, opt Options) (Endpoint, error) {
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	name := containerPrefix + hex.EncodeToString(suffix)
	if opt.Starting != nil {
		if err := opt.Starting(name); err != nil {
			return Endpoint{}, err
		}
	}
	daemon := opt.Daemon
	image := daemon.image()
	// Privileged, as buildx's docker-container driver runs it, and on Docker's
	// default network unless asked: RUN steps of untrusted code must not reach
	// the runner's localhost or its cloud instance metadata.
	args := []string{"create", "--name", name, "--privileged"}
	if opt.HostNetwork {
		args = append(args, "--network", "host")
	}
	args = append(append(args, image), daemon.Args(ConfigPath)...)
	err := func() error {
		// docker create pulls the image when the engine lacks it.
		cctx, cancel := context.WithTimeout(ctx, pullTimeout)
		defer cancel()
		if _, err := d.run(cctx, args...); err != nil {
			return fmt.Errorf("buildkit-image %s: the Docker engine could not create a container from it (is the image name right, and can the runner's "+
				"Docker engine pull it? a private registry such as ECR needs a docker login in an earlier step, e.g. aws-actions/amazon-ecr-login; "+
				"an ECR pull-through cache avoids Docker Hub: see docs/remote-builders.md): %w", image, err)
		}
		if daemon.Config != "" {
			archive, err := daemon.configArchive()
			if err != nil {
				return err
			}
			if _, err := d.runWithInput(ctx, archive, "cp", "-", name+":"+path.Dir(path.Dir(ConfigPath))); err != nil {
				return err
			}
		}
		_, err := d.run(ctx, "start", name)
		return err
	}()
	if err != nil {
		// docker create can fail after creating the container.
		_ = Stop(context.WithoutCancel(ctx), d.getenv, name)
		return Endpoint{}, fmt.Errorf("start a BuildKit container: %w", err)
	}
	ep := Endpoint{Addr: "docker-container://" + name, Source: "container " + name + " started from " + image, Container: name}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		_, err := d.run(wctx, "exec", name, "buildctl", "debug", "workers")
		if err == nil {
			return ep, nil
		}
		select {
		case <-wctx.Done():
			logs, _ := d.run(context.WithoutCancel(ctx), "logs", "--tail", "20", name)
			_ = Stop(context.WithoutCancel(ctx), d.getenv, name)
			return Endpoint{}, fmt.Errorf("BuildKit container %s did not become ready: %w\nits log ends:\n%s", name, err, logs)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Stop removes a container that Resolve started. It refuses other names, since
// the name comes back through GITHUB_STATE.
func Stop(ctx context.Context, getenv func(string) string, container string) error {
	if !strings.HasPrefix(container, containerPrefix) {
		return fmt.Errorf("%q is not a container this action started", container)
	}
	// -v: the image's VOLUME /var/lib/buildkit goes with it.
	_, err := dockerCLI{getenv: getenv}.run(ctx, "rm", "-f", "-v", container)
	if err != nil && strings.Contains(err.Error(), "No such container") {
		return nil // the main step was cancelled before docker created it
	}
	return err
}
