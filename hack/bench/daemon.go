package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/buildkitconn"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// The default container study: what the action's default path (no
// buildkit-host, no builder: it starts a BuildKit container in the runner's
// Docker engine) costs a job, against building on a buildkitd already running.
type daemonResults struct {
	runs int
	// start: docker create and start until buildctl answers in it (what the main
	// step waits for); connect: the first call through docker exec; stop: the
	// post step's removal.
	start, connect, stop []float64
	// warm jobs (every step cached, builder empty as on a fresh runner), whole
	// action process: on a container it starts, and on the stack's buildkitd.
	jobContainer, jobDaemon []float64
	imported                float64 // docker import of the image, once
	imageSize               float64
	date                    string
	load                    [2]string
}

// daemonFixture is three small steps: the study times the daemon, not the build.
const daemonFixture = "ARG BASE\nFROM ${BASE}\nRUN echo compiled > /compiled\nCOPY app.txt /app/app.txt\nRUN cat /app/app.txt > /app/copy\n"

func (b *bench) daemon(ctx context.Context, runs int) (*daemonResults, error) {
	res := &daemonResults{runs: runs, date: time.Now().UTC().Format("2006-01-02 15:04 MST"), load: [2]string{loadavg()}}
	dir := filepath.Join(b.dir, "docker")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	host, stop, err := teststack.StartDockerIn(ctx, dir)
	defer stop()
	if err != nil {
		return nil, err
	}
	rootfs, err := b.s.BuildkitRootfs()
	if err != nil {
		return nil, err
	}
	began := time.Now()
	if err := teststack.ImportBuildkitImage(host, rootfs); err != nil {
		return nil, err
	}
	res.imported = time.Since(began).Seconds()
	out, err := teststack.Docker(host, "image", "inspect", "--format", "{{.Size}}", teststack.BuildkitImageRef)
	if err != nil {
		return nil, fmt.Errorf("docker image inspect: %w: %s", err, out)
	}
	if res.imageSize, err = strconv.ParseFloat(strings.TrimSpace(out), 64); err != nil {
		return nil, fmt.Errorf("image size %q: %w", out, err)
	}

	cx := filepath.Join(b.dir, "daemon-app")
	if err := os.MkdirAll(cx, 0o755); err != nil {
		return nil, err
	}
	for name, content := range map[string]string{"Dockerfile": daemonFixture, "app.txt": "app\n"} {
		if err := os.WriteFile(filepath.Join(cx, name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	// As in the tests: the engine runs with --bridge=none, so the container
	// reaches the loopback registry on the host's network.
	container := map[string]string{"buildkit-host": "", "buildkit-image": teststack.BuildkitImageRef,
		"buildkit-host-network": "true", "buildkitd-config-inline": b.s.RegistryConfig()}
	onDaemon := map[string]string{"buildkit-host": b.s.BuildkitAddr}
	if _, err := b.daemonJob(ctx, host, cx, onDaemon); err != nil { // the cache the warm jobs import
		return nil, err
	}
	getenv := func(k string) string {
		return map[string]string{"PATH": os.Getenv("PATH"), "DOCKER_HOST": host}[k]
	}
	d, err := buildkitconn.ParseDaemon(teststack.BuildkitImageRef, b.s.RegistryConfig(), "")
	if err != nil {
		return nil, err
	}
	for r := 1; r <= runs; r++ {
		began := time.Now()
		ep, err := buildkitconn.Resolve(ctx, buildkitconn.Options{Daemon: d, HostNetwork: true, Getenv: getenv})
		if err != nil {
			return nil, err
		}
		res.start = append(res.start, time.Since(began).Seconds())
		began = time.Now()
		c, err := buildkitconn.Connect(ctx, ep)
		if err != nil {
			return nil, err
		}
		res.connect = append(res.connect, time.Since(began).Seconds())
		c.Close()
		began = time.Now()
		if err := buildkitconn.Stop(ctx, getenv, ep.Container); err != nil {
			return nil, err
		}
		res.stop = append(res.stop, time.Since(began).Seconds())

		took, err := b.daemonJob(ctx, host, cx, container)
		if err != nil {
			return nil, err
		}
		res.jobContainer = append(res.jobContainer, took)
		if err := b.s.Prune(ctx); err != nil {
			return nil, err
		}
		if took, err = b.daemonJob(ctx, host, cx, onDaemon); err != nil {
			return nil, err
		}
		res.jobDaemon = append(res.jobDaemon, took)
		b.logf("daemon run %d/%d: start-up %s, connect %s, removal %s; warm job on the container %s, on buildkitd %s", r, runs,
			fmtSec(res.start[r-1]), fmtSec(res.connect[r-1]), fmtSec(res.stop[r-1]), fmtSec(res.jobContainer[r-1]), fmtSec(res.jobDaemon[r-1]))
	}
	res.load[1] = loadavg()
	return res, nil
}

// daemonJob runs the action binary as a main step (and removes the container
// it started, as its post step does); it returns the main step's seconds.
func (b *bench) daemonJob(ctx context.Context, host, cx string, inputs map[string]string) (float64, error) {
	dir, err := os.MkdirTemp(b.dir, "daemon-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	in := map[string]string{"registry": "http://" + b.s.Registry, "repository": "bench/daemon", "tags": "main",
		"context": cx, "build-args": "BASE=" + b.s.BaseImage}
	for k, v := range inputs {
		in[k] = v
	}
	r := teststack.NewActionRunIn(dir, in)
	if err := r.SetPush("main", "main"); err != nil {
		return 0, err
	}
	state := filepath.Join(dir, "state")
	r.Env["PATH"], r.Env["DOCKER_HOST"], r.Env["HOME"], r.Env["GITHUB_STATE"] = os.Getenv("PATH"), host, dir, state
	began := time.Now()
	err = r.Exec(ctx, b.bin)
	took := time.Since(began).Seconds()
	if b, rerr := os.ReadFile(state); rerr == nil {
		if name := teststack.ParseOutputs(string(b))[buildkitconn.StateContainer]; name != "" {
			if serr := buildkitconn.Stop(ctx, func(k string) string { return r.Env[k] }, name); serr != nil && err == nil {
				err = serr
			}
		}
	}
	if err != nil {
		return 0, fmt.Errorf("%w\n%s", err, r.StdoutTail(4000))
	}
	o, err := r.ReadOutputs()
	if err != nil {
		return 0, err
	}
	if inputs["buildkit-host"] == "" && o["cached-steps"] != o["total-steps"] {
		return 0, fmt.Errorf("warm job on the container: %s/%s steps cached, want all", o["cached-steps"], o["total-steps"])
	}
	return took, nil
}

// render is the study's printed report.
func (r *daemonResults) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "== default BuildKit container: no buildkit-host, the action starts a privileged BuildKit container in the runner's Docker engine\n")
	fmt.Fprintf(&b, "   image of the stack's buildkitd, buildctl, runc and busybox (%s), imported once in %s; median of %d\n",
		fmtBytes(r.imageSize), fmtSec(r.imported), r.runs)
	fmt.Fprintf(&b, "%-62s %9s\n", "start-up (docker create, docker start, until buildctl answers)", fmtSec(median(r.start)))
	fmt.Fprintf(&b, "%-62s %9s\n", "first call through it (docker exec buildctl dial-stdio)", fmtSec(median(r.connect)))
	fmt.Fprintf(&b, "%-62s %9s\n", "removal (the post step: docker rm -f -v)", fmtSec(median(r.stop)))
	on, off := median(r.jobContainer), median(r.jobDaemon)
	fmt.Fprintf(&b, "warm job (3 steps, all cached, builder empty): %s starting the container, %s on a running buildkitd: %s more per job\n",
		fmtSec(on), fmtSec(off), fmtSec(on-off))
	return b.String()
}

// daemonHeading starts the study's section of BENCHMARKS.md.
const daemonHeading = "## Default BuildKit container"

// markdown is the study's section of BENCHMARKS.md; "" when it did not run.
func (r *daemonResults) markdown() string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf(`
%s

Written by `+"`make bench`"+` (or `+"`go run ./hack/bench -only daemon -out BENCHMARKS.md`"+`, which replaces this section only) on %s;
load average at start %s, at end %s.

With no `+"`buildkit-host`"+` and no builder, the action starts a BuildKit container for the job (what most
GitHub-hosted users get); this is what that costs a job. The engine is Debian's docker.io; the image is made here from
the stack's own binaries (no Docker Hub), so a runner's image pull (`+"`moby/buildkit`"+`, tens of MB, once per job on a
fresh runner) is not in these figures. The warm jobs run the action binary on a builder with nothing in it, as on a
fresh runner, importing every step from the registry cache; the container's start-up is the difference.

`+"```text\n%s```\n", daemonHeading, r.date, r.load[0], r.load[1], r.render())
}
