package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/faultproxy"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// TestCancelStopsTheBuildAndPublishesNothing cancels a real build the way the
// runner does, by signalling the node process of dist/launcher.js: while a RUN
// step runs, while the image manifest is being pushed (held by a fault proxy),
// before and after the cache export beside it has written its tag, and while
// the cache manifest is being pushed. The action's binary must be gone within
// the 10 s the runner allows, and no image tag may appear in the registry, even
// once buildkitd has finished with the build. With one solve the cache export
// runs beside the image push, so a cache whose manifest reached the registry
// before the signal, or as it came, may stay: it must be complete (every blob
// it names is there), as a cache tag always is. A held manifest is never written.
func TestCancelStopsTheBuildAndPublishesNothing(t *testing.T) {
	s := teststack.Get(t)
	bin, err := os.ReadFile(teststack.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		run  string // the Dockerfile's RUN step
		sig  syscall.Signal
		// held is the tag (or tag prefix) whose manifest PUT is in flight,
		// held by a fault proxy, when the signal comes; "": the signal comes
		// while the RUN step runs.
		held string
		// in is a tag the signal waits for, besides the held request: what
		// the unheld half of the solve (image push, cache export) wrote.
		in string
	}{{
		name: "mid build",
		run:  `echo "$NONCE" > /nonce && sleep 20`,
		sig:  syscall.SIGINT,
	}, {
		name: "mid image push",
		run:  `echo "$NONCE" > /nonce`,
		sig:  syscall.SIGINT,
		held: "latest",
	}, {
		// The cache export beside the held image push finishes first: that
		// complete cache stays, the image is still never published.
		name: "mid image push after the cache export",
		run:  `echo "$NONCE" > /nonce`,
		sig:  syscall.SIGINT,
		held: "latest",
		in:   "cache-",
	}, {
		// The runner's second signal alone (a timed-out job on some runners) does the same.
		name: "mid cache export",
		run:  `echo "$NONCE" > /nonce`,
		sig:  syscall.SIGTERM,
		held: "cache-",
		// Cancel once the image push beside it is in, so that the signal
		// comes during the cache export alone.
		in: "latest",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			nonce := strconv.FormatInt(time.Now().UnixNano(), 36)
			repo := "cancel-" + strings.ReplaceAll(tc.name, " ", "-")
			ctxDir := t.TempDir()
			writeFile(t, filepath.Join(ctxDir, "Dockerfile"), fmt.Appendf(nil, "FROM %s\nARG NONCE\nRUN %s\n", s.BaseImage, tc.run), 0o644)
			registry := s.Registry
			var held *faultproxy.Rule
			if tc.held != "" {
				held = &faultproxy.Rule{Method: "PUT", Path: `^/v2/` + repo + `/manifests/` + tc.held, Delay: time.Minute}
				registry = faultproxy.Serve(t, "http://"+s.Registry, held).Host
			}
			r := teststack.NewActionRun(t, map[string]string{
				"registry":      "http://" + registry,
				"repository":    repo,
				"tags":          "latest",
				"context":       ctxDir,
				"build-args":    "NONCE=" + nonce, // new steps each run, and a mark on buildkitd's build records
				"buildkit-host": s.BuildkitAddr,
			})
			if err := r.SetPush("main", "main"); err != nil {
				t.Fatal(err)
			}
			state := filepath.Join(t.TempDir(), "state")
			root, path := launcherCheckout(t)
			ship(t, root, bin)
			l := launch(t, root, path, r, "GITHUB_STATE="+state)

			if held == nil {
				l.waitFor(t, "RUN step", func() bool { return strings.Contains(r.Stdout(), "sleep 20") })
			} else {
				l.waitFor(t, "held request", func() bool { return held.Matched() > 0 })
			}
			if tc.in != "" {
				l.waitFor(t, "tag "+tc.in+"*", func() bool {
					return slices.ContainsFunc(tags(t, s.Registry+"/"+repo), func(tag string) bool { return strings.HasPrefix(tag, tc.in) })
				})
			}
			child := l.child(t)
			before := tags(t, s.Registry+"/"+repo)

			signalled := time.Now()
			code := l.signal(t, tc.sig)
			mustEnd(t, child, "the action's binary", signalled.Add(10*time.Second))
			out := r.Stdout()
			if code == 0 {
				t.Errorf("the cancelled step exited 0:\n%s", tail(out, 3000))
			}
			if strings.Contains(out, "still running") {
				t.Errorf("the binary did not stop on the signal, the launcher had to kill it:\n%s", tail(out, 3000))
			}

			// Whatever buildkitd still did for the build, it has done now.
			waitBuildsDone(t, s, nonce)
			after := tags(t, s.Registry+"/"+repo)
			if images := func(tags []string) []string {
				return slices.DeleteFunc(slices.Clone(tags), func(tag string) bool { return strings.HasPrefix(tag, "cache-") })
			}; !slices.Equal(images(before), images(after)) {
				t.Errorf("tags of %s: %v before the cancel, %v after; a cancelled build publishes no image\n%s", repo, before, after, tail(out, 3000))
			}
			for _, tag := range after {
				if strings.HasPrefix(tag, "cache-") {
					mustBeComplete(t, s.Registry+"/"+repo+":"+tag)
					if !slices.Contains(before, tag) {
						t.Logf("cache tag %s written beside the cancel; it is complete", tag)
					}
				}
			}
			if tc.in != "" && !slices.ContainsFunc(after, func(tag string) bool { return strings.HasPrefix(tag, tc.in) }) {
				t.Errorf("tags of %s: %v before the cancel, %v after; what was complete before the cancel is gone", repo, before, after)
			}
			for _, tag := range after {
				if tc.held != "" && strings.HasPrefix(tag, tc.held) && !slices.Contains(before, tag) {
					t.Errorf("tags of %s: %v before the cancel, %v after; the held manifest of %s was written", repo, before, after, tag)
				}
			}

			// The post step still runs after the cancel (the main step saved that it is one).
			saved, err := os.ReadFile(state)
			if err != nil || !strings.Contains(string(saved), "isPost=true") {
				t.Fatalf("main step saved state %q (%v); the post step is told apart by isPost=true", saved, err)
			}
			if pout, code := runLauncher(t, root, path, "STATE_isPost=true"); code != 0 || !strings.Contains(pout, "ecr-build-cache post: nothing to clean up") {
				t.Errorf("post step after the cancel: exit %d, printed:\n%s", code, pout)
			}
		})
	}
}

// tags lists repo's tags; a repository nothing was pushed to has none.
func tags(t *testing.T, repo string) []string {
	t.Helper()
	tags, err := teststack.Tags(repo)
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == 404 {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return tags
}

// mustBeComplete fails t unless every blob the manifest at ref names (layers,
// config, or an index's entries, as BuildKit's cache writes them) is in the
// registry: the cache a later run would import is whole.
func mustBeComplete(t *testing.T, ref string) {
	t.Helper()
	d, found, err := teststack.Manifest(ref, nil)
	if err != nil || !found {
		t.Fatalf("%s: found=%v err=%v", ref, found, err)
	}
	var m struct {
		Config    *ocispec.Descriptor
		Layers    []ocispec.Descriptor
		Manifests []ocispec.Descriptor
	}
	if err := json.Unmarshal(d.Manifest, &m); err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	blobs := append(m.Layers, m.Manifests...)
	if m.Config != nil {
		blobs = append(blobs, *m.Config)
	}
	if len(blobs) == 0 {
		t.Errorf("%s names no blobs:\n%s", ref, d.Manifest)
	}
	repo, _, _ := strings.Cut(ref, ":cache-")
	host, path, _ := strings.Cut(repo, "/")
	for _, b := range blobs {
		resp, err := http.Head("http://" + host + "/v2/" + path + "/blobs/" + b.Digest.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s names blob %s (%s), which the registry answers %d: a partial cache was tagged", ref, b.Digest, b.MediaType, resp.StatusCode)
		}
	}
}

// waitBuildsDone waits until buildkitd runs no build marked with nonce.
func waitBuildsDone(t *testing.T, s *teststack.Stack, nonce string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := client.New(ctx, s.BuildkitAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for {
		active, err := activeBuild(ctx, c, nonce)
		if err != nil {
			t.Fatalf("buildkitd's active builds: %v", err)
		}
		if !active {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("buildkitd still runs the cancelled build after 3 minutes")
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func activeBuild(ctx context.Context, c *client.Client, nonce string) (bool, error) {
	stream, err := c.ControlClient().ListenBuildHistory(ctx, &controlapi.BuildHistoryRequest{ActiveOnly: true, EarlyExit: true})
	if err != nil {
		return false, err
	}
	active := false
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return active, nil
		}
		if err != nil {
			return false, err
		}
		if ev.Record.FrontendAttrs["build-arg:NONCE"] == nonce {
			active = true
		}
	}
}
