package run_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/buildkitconn"
	"github.com/ecr-build-cache/ecr-build-cache/internal/run"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// defaultContainerRepo is the repository the default-container jobs push to.
const defaultContainerRepo = "default-container"

// dockerJob is a job on a runner whose Docker engine is host, with no
// buildkit-host: the action starts its own BuildKit container there.
func dockerJob(t *testing.T, s *teststack.Stack, host string, extra map[string]string) *teststack.ActionRun {
	t.Helper()
	inputs := map[string]string{"buildkit-host": ""}
	for k, v := range extra {
		inputs[k] = v
	}
	r := pushRun(t, s, defaultContainerRepo, "main", inputs)
	r.Env["PATH"], r.Env["DOCKER_HOST"], r.Env["HOME"] = os.Getenv("PATH"), host, t.TempDir()
	r.Env["GITHUB_STATE"] = filepath.Join(t.TempDir(), "state")
	return r
}

// postStep runs the action's post step with the state the main step saved,
// and returns the container the main step said it started.
func postStep(t *testing.T, main *teststack.ActionRun) string {
	t.Helper()
	b, err := os.ReadFile(main.Env["GITHUB_STATE"])
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	name := teststack.ParseOutputs(string(b))[buildkitconn.StateContainer]
	post := teststack.NewActionRun(t, nil)
	post.Env["PATH"], post.Env["DOCKER_HOST"] = main.Env["PATH"], main.Env["DOCKER_HOST"]
	post.Env["STATE_"+buildkitconn.StateContainer] = name
	if err := run.Post(context.Background(), post.Action()); err != nil {
		t.Fatalf("post step: %v", err)
	}
	if strings.Contains(post.Stdout(), "::warning::") {
		t.Errorf("post step warned:\n%s", post.Stdout())
	}
	return name
}

// containers lists every container of the engine, running or not.
func containers(t *testing.T, host string) []string {
	t.Helper()
	out, err := teststack.Docker(host, "ps", "--all", "--format", "{{.Names}}")
	if err != nil {
		t.Fatalf("docker ps: %v: %s", err, out)
	}
	return strings.Fields(out)
}

// The path most GitHub-hosted users get: with no buildkit-host and no builder,
// the action starts a privileged BuildKit container in the runner's Docker
// engine, builds there, and its post step removes it. Real engine, real
// BuildKit image (made here from the stack's binaries: nothing is pulled).
func TestDefaultBuildKitContainerOnARealDockerEngine(t *testing.T) {
	s := teststack.Get(t)
	host := teststack.StartDocker(t)
	image := s.BuildkitImage(t, host)
	// The engine runs with --bridge=none, so the container reaches the stack's
	// loopback registry only on the runner's network; it needs the registry's
	// plain-HTTP entry like any buildkitd here.
	inputs := map[string]string{
		"buildkit-image":          image,
		"buildkit-host-network":   "true",
		"buildkitd-config-inline": s.RegistryConfig(),
	}

	var started []string
	for i, want := range []int{0, 3} { // a cold job, then a new job on a new container: all cached
		r := dockerJob(t, s, host, inputs)
		o := mustRun(t, r)
		name := postStepAfter(t, r, func(name string) {
			// While the job runs, its container is there, privileged, from the image.
			out, err := teststack.Docker(host, "inspect", "--format", "{{.HostConfig.Privileged}} {{.Config.Image}} {{.State.Running}}", name)
			if got := strings.TrimSpace(out); err != nil || got != "true "+image+" true" {
				t.Errorf("job %d: container %s: %q (%v), want privileged, from %s, running", i, name, got, err, image)
			}
		})
		if !strings.Contains(r.Stdout(), "BuildKit: docker-container://"+name+" (from container "+name+" started from "+image+")") {
			t.Errorf("job %d: the log does not say it built on %s:\n%s", i, name, r.StdoutTail(3000))
		}
		if c, n := steps(t, o); c != want || n != 3 {
			t.Errorf("job %d: %d/%d steps cached, want %d/3", i, c, n, want)
		}
		if left := containers(t, host); len(left) != 0 {
			t.Errorf("job %d: after the post step the engine still has %q", i, left)
		}
		started = append(started, name)
	}
	if started[0] == started[1] {
		t.Errorf("both jobs ran on %s; the second must start its own", started[0])
	}
	// docker rm -v: the image's /var/lib/buildkit volume went with each container.
	if out, err := teststack.Docker(host, "volume", "ls", "--quiet"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("volumes left: %q (%v)", out, err)
	}

	t.Run("cancel during start", func(t *testing.T) {
		// Cancel the job the moment the engine reports the container created,
		// before its buildkitd answers.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		events := exec.CommandContext(ctx, "docker", "events", "--filter", "type=container", "--filter", "event=create", "--format", "{{.Actor.Attributes.name}}")
		events.Env = append(os.Environ(), "DOCKER_HOST="+host)
		stdout, err := events.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := events.Start(); err != nil {
			t.Fatal(err)
		}
		created := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			if sc.Scan() {
				created <- sc.Text()
				cancel()
			}
			close(created)
		}()
		r := dockerJob(t, s, host, inputs)
		err = run.Run(ctx, r.Action(), r.Writer(), r.Environ())
		cancel()
		_ = events.Wait()
		name, ok := <-created
		if !ok {
			t.Fatalf("no container was created; run: %v\n%s", err, r.StdoutTail(2000))
		}
		if err == nil {
			t.Fatalf("the cancelled job succeeded on %s", name)
		}
		if saved := postStep(t, r); saved != name {
			t.Errorf("the main step saved %q for the post step, created %q", saved, name)
		}
		if left := containers(t, host); len(left) != 0 {
			t.Errorf("after a cancel during start and the post step, the engine has %q", left)
		}
	})

	t.Run("image that cannot be pulled", func(t *testing.T) {
		// Nothing listens on port 1: the pull fails at once.
		bad := "127.0.0.1:1/mirror/buildkit:v0.34.2"
		r := dockerJob(t, s, host, map[string]string{"buildkit-image": bad, "buildkit-host-network": "true"})
		err := failRun(t, r)
		for _, want := range []string{"buildkit-image", bad} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q: %v", want, err)
			}
		}
		postStep(t, r)
		if left := containers(t, host); len(left) != 0 {
			t.Errorf("after a failed pull the engine has %q", left)
		}
	})

	t.Run("setup-buildx-action's builder", func(t *testing.T) {
		// What docker/setup-buildx-action leaves (buildx create --driver
		// docker-container --use, then --bootstrap), made by hand: buildx cannot
		// be installed here. The node's container, named as buildx names it,
		// privileged, with its config in /etc/buildkit; the store's files in the
		// shapes buildx writes them.
		const builder = "builder-e2e"
		conf := t.TempDir()
		if err := os.WriteFile(filepath.Join(conf, "buildkitd.toml"), []byte(s.RegistryConfig()), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := teststack.Docker(host, "run", "--detach", "--privileged", "--network", "host", "--name", "buildx_buildkit_"+builder+"0",
			"--volume", conf+":/etc/buildkit", image); err != nil {
			t.Fatalf("start the builder's node: %v: %s", err, out)
		}
		t.Cleanup(func() { _, _ = teststack.Docker(host, "rm", "--force", "--volumes", "buildx_buildkit_"+builder+"0") })
		// --bootstrap: setup-buildx-action returns once the node's buildkitd answers.
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
			out, err := teststack.Docker(host, "exec", "buildx_buildkit_"+builder+"0", "buildctl", "debug", "workers")
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the builder's buildkitd did not answer: %v: %s", err, out)
			}
		}
		r := dockerJob(t, s, host, nil)
		store := filepath.Join(r.Env["HOME"], ".docker", "buildx")
		for name, content := range map[string]string{
			"current": `{"Key":"` + host + `","Name":"` + builder + `","Global":false}`,
			"instances/" + builder: `{"Name":"` + builder + `","Driver":"docker-container","Nodes":[{"Name":"` + builder + `0","Endpoint":"` + host +
				`","Platforms":null,"DriverOpts":{"network":"host"},"Flags":["--allow-insecure-entitlement=security.insecure","--allow-insecure-entitlement=network.host"],"Files":null}],"Dynamic":false}`,
		} {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(store, name)), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(store, name), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		o := mustRun(t, r)
		if !strings.Contains(r.Stdout(), "::notice::Building on buildx's current builder "+builder) {
			t.Errorf("no notice that it built on %s:\n%s", builder, r.StdoutTail(3000))
		}
		// It built there (the cache from the jobs above: every step cached), and started nothing.
		if c, n := steps(t, o); c != 3 || n != 3 {
			t.Errorf("%d/%d steps cached, want 3/3", c, n)
		}
		if got := containers(t, host); len(got) != 1 || got[0] != "buildx_buildkit_"+builder+"0" {
			t.Errorf("containers %q, want only the builder's", got)
		}
		if postStep(t, r) != "" {
			t.Error("the main step saved a container of its own for the post step")
		}
		// The builder's buildkitd ran the build: its local cache holds records.
		out, err := teststack.Docker(host, "exec", "buildx_buildkit_"+builder+"0", "buildctl", "du", "--format", "{{len .}}")
		if n, _ := strconv.Atoi(strings.TrimSpace(out)); err != nil || n == 0 {
			t.Errorf("buildctl du in the builder: %v: %q records, want some", err, out)
		}
	})
}

// postStepAfter checks the running container with during, then runs the post
// step; it returns the container's name.
func postStepAfter(t *testing.T, main *teststack.ActionRun, during func(name string)) string {
	t.Helper()
	b, err := os.ReadFile(main.Env["GITHUB_STATE"])
	if err != nil {
		t.Fatalf("the main step saved no state: %v", err)
	}
	during(teststack.ParseOutputs(string(b))[buildkitconn.StateContainer])
	return postStep(t, main)
}
