package run_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/fakeecr"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/faultproxy"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// These tests put a fault proxy (internal/testing/faultproxy) between the action and
// the stack's registry, or inside the ECR double, and check what a user sees
// when the registry or ECR misbehaves.

// faultyRegistry starts a fault proxy with rules in front of the stack's
// registry; runs that set registry to its URL push and pull through it.
func faultyRegistry(t *testing.T, s *teststack.Stack, rules ...*faultproxy.Rule) *faultproxy.Server {
	return faultproxy.Serve(t, "http://"+s.Registry, rules...)
}

// parsedManifest reads the (single-image) manifest tagged ref in the stack's
// registry.
func parsedManifest(t *testing.T, ref string) (*remote.Descriptor, *v1.Manifest) {
	t.Helper()
	d, found, err := teststack.Manifest(ref, nil)
	if err != nil || !found {
		t.Fatalf("cache tag %s: found=%v err=%v", ref, found, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(d.Manifest))
	if err != nil {
		t.Fatalf("cache manifest %s: %v", ref, err)
	}
	return d, m
}

// cacheManifest reads the manifest tagged ref in the stack's registry and
// returns its digest and the blobs it names that the registry does not have.
func cacheManifest(t *testing.T, ref string) (digest string, missing []string) {
	t.Helper()
	d, m := parsedManifest(t, ref)
	n, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		resp, err := http.Head(fmt.Sprintf("http://%s/v2/%s/blobs/%s", n.Context().RegistryStr(), n.Context().RepositoryStr(), b.Digest))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			missing = append(missing, b.Digest.String())
		}
	}
	return d.Digest.String(), missing
}

// withHost rewrites ref (host/repo:tag) to another registry host.
func withHost(ref, host string) string {
	_, rest, _ := strings.Cut(ref, "/")
	return host + "/" + rest
}

// greetingRun builds the sample app, with greeting in its last step, for a push
// to main into repo (cache in cacheRepo).
func greetingRun(t *testing.T, s *teststack.Stack, repo, cacheRepo, greeting string, extra map[string]string) *teststack.ActionRun {
	t.Helper()
	in := map[string]string{"cache-repository": cacheRepo, "build-args": "BASE=" + s.BaseImage + "\nGREETING=" + greeting}
	for k, v := range extra {
		in[k] = v
	}
	return pushRun(t, s, repo, "main", in)
}

// exportFault is one way the cache export can fail while the image push works.
type exportFault struct {
	name string
	// ownRepo puts the cache in a repository of its own, so that a rule on
	// blob uploads hits the cache's and not the image's (BuildKit pushes both
	// at once).
	ownRepo bool
	rule    func(cacheRepo string) *faultproxy.Rule
	inputs  map[string]string
	// why is what the warning must say; "" when the export is only slow and
	// the new cache is saved.
	why string
}

var exportFaults = []exportFault{{
	name: "429 with Retry-After on the cache manifest",
	rule: func(repo string) *faultproxy.Rule {
		return &faultproxy.Rule{Method: "PUT", Path: `^/v2/` + repo + `/manifests/cache-`, Status: 429, RetryAfter: time.Second}
	},
	// BuildKit does not retry 429 (docker/buildx#3630).
	why: "toomanyrequests: faultproxy: injected 429",
}, {
	name: "500 on the cache manifest",
	rule: func(repo string) *faultproxy.Rule {
		return &faultproxy.Rule{Method: "PUT", Path: `^/v2/` + repo + `/manifests/cache-`, Status: 500}
	},
	why: "faultproxy: injected 500 Internal Server Error",
}, {
	name:    "503 on every cache blob upload",
	ownRepo: true,
	rule: func(repo string) *faultproxy.Rule {
		return &faultproxy.Rule{Path: `^/v2/` + repo + `/blobs/uploads/`, Status: 503, RetryAfter: time.Second}
	},
	why: "faultproxy: injected 503 Service Unavailable",
}, {
	name:    "connection closed mid-upload",
	ownRepo: true,
	rule: func(repo string) *faultproxy.Rule {
		return &faultproxy.Rule{Method: "PUT", Path: `^/v2/` + repo + `/blobs/uploads/.`, Close: true, ReadBeforeClose: 64}
	},
	why: "EOF",
}, {
	name:    "401 after the first upload request (expired token)",
	ownRepo: true,
	rule: func(repo string) *faultproxy.Rule {
		return &faultproxy.Rule{Path: `^/v2/` + repo + `/blobs/uploads/`, After: 1, Status: 401}
	},
	why: "401 Unauthorized",
}, {
	name: "cache manifest hangs past cache-export-timeout",
	rule: func(repo string) *faultproxy.Rule {
		return &faultproxy.Rule{Method: "PUT", Path: `^/v2/` + repo + `/manifests/cache-`, Delay: 5 * time.Minute}
	},
	inputs: map[string]string{"cache-export-timeout": "3s"},
	why:    "did not finish within 3s",
}, {
	name: "slow cache manifest",
	rule: func(repo string) *faultproxy.Rule {
		return &faultproxy.Rule{Method: "PUT", Path: `^/v2/` + repo + `/manifests/cache-`, Delay: 2 * time.Second}
	},
}}

// A failed cache export never fails a good build: the image is pushed, the run
// succeeds with a warning saying why, and the cache tag afterwards is the
// previous complete cache (or, when the export only was slow, the new one).
func TestCacheExportFaultsKeepTheImageAndACompleteCache(t *testing.T) {
	s := teststack.Get(t)
	type state struct {
		repo, cacheRepo, cacheRef string // cacheRef in the stack's registry
		before                    string // digest of the previous cache
	}
	states := make([]state, len(exportFaults))
	for i, f := range exportFaults {
		repo := fmt.Sprintf("export-fault-%d", i)
		states[i] = state{repo: repo, cacheRepo: repo}
		if f.ownRepo {
			states[i].cacheRepo = repo + "-cache"
		}
	}

	// The previous complete cache, written without faults.
	if !t.Run("previous", func(t *testing.T) {
		for i, f := range exportFaults {
			t.Run(f.name, func(t *testing.T) {
				t.Parallel()
				st := &states[i]
				o := mustRun(t, greetingRun(t, s, st.repo, st.cacheRepo, "before", nil))
				st.cacheRef = o["cache-ref"]
				st.before, _ = cacheManifest(t, st.cacheRef)
			})
		}
	}) {
		t.FailNow()
	}

	t.Run("faulty", func(t *testing.T) {
		for i, f := range exportFaults {
			t.Run(f.name, func(t *testing.T) {
				t.Parallel()
				st := states[i]
				rule := f.rule(st.cacheRepo)
				p := faultyRegistry(t, s, rule)
				in := map[string]string{"registry": p.URL}
				for k, v := range f.inputs {
					in[k] = v
				}
				r := greetingRun(t, s, st.repo, st.cacheRepo, "after-"+f.name, in)
				if err := execRun(t, r); err != nil {
					t.Fatalf("the run failed (%v):\n%s", err, r.Stdout())
				}
				o := r.Outputs(t)
				if rule.Matched() == 0 {
					t.Fatalf("the fault never happened: no request matched\n%s", r.Stdout())
				}

				image := s.Registry + "/" + st.repo + ":latest"
				d, found, err := teststack.Manifest(image, nil)
				if err != nil || !found || d.Digest.String() != o["digest"] {
					t.Errorf("image %s: found=%v err=%v; digest output %q", image, found, err, o["digest"])
				}
				if got, err := teststack.ImageFile(image, "/app/greeting", nil); err != nil || got != "after-"+f.name+"\n" {
					t.Errorf("/app/greeting = %q, %v: not this run's image", got, err)
				}

				warning := "::warning::cache not saved to " + o["cache-ref"]
				if withHost(o["cache-ref"], s.Registry) != st.cacheRef {
					t.Fatalf("exported to %s, the previous run to %s", o["cache-ref"], st.cacheRef)
				}
				after, missing := cacheManifest(t, st.cacheRef)
				if len(missing) > 0 {
					t.Errorf("the cache tag names blobs the registry lacks: %q", missing)
				}
				switch {
				case f.why == "" && (strings.Contains(r.Stdout(), "cache not saved") || after == st.before):
					t.Errorf("a slow export was not saved (tag %s, previous %s):\n%s", after, st.before, r.Stdout())
				case f.why != "" && (!strings.Contains(r.Stdout(), warning) || !strings.Contains(r.Stdout(), f.why)):
					t.Errorf("no warning %q saying %q:\n%s", warning, f.why, r.Stdout())
				case f.why != "" && after != st.before:
					t.Errorf("the cache tag changed to %s (previous %s) although the export failed", after, st.before)
				}
			})
		}
	})

	// What the tag holds imports on a pruned builder: all three steps from a
	// new cache; from the previous one (another greeting) the first two.
	for i, f := range exportFaults {
		st := states[i]
		prune(t, s)
		r := greetingRun(t, s, st.repo, st.cacheRepo, "after-"+f.name, map[string]string{"push": "false", "cache-export": "false"})
		o := mustRun(t, r)
		want := 2
		if f.why == "" {
			want = 3
		}
		if c, n := steps(t, o); c != want || n != 3 || o["cache-from"] != st.cacheRef {
			t.Errorf("%s: rebuild on a pruned builder: %d/%d steps cached, imported %q; want %d/3 from %s\n%s",
				f.name, c, n, o["cache-from"], want, st.cacheRef, r.Stdout())
		}
	}
}

// Stopping a hung cache export must not stop a slow image push, nor report an
// image that was never pushed (in one solve, BuildKit pushes the image while
// it exports the cache).
func TestHungCacheExportLetsASlowImagePushFinish(t *testing.T) {
	s := teststack.Get(t)
	image := &faultproxy.Rule{Method: "PUT", Path: `^/v2/slow-push/manifests/latest$`, Delay: 6 * time.Second}
	cache := &faultproxy.Rule{Method: "PUT", Path: `^/v2/slow-push/manifests/cache-`, Delay: 5 * time.Minute}
	p := faultyRegistry(t, s, image, cache)
	r := greetingRun(t, s, "slow-push", "slow-push", "slow", map[string]string{"registry": p.URL, "cache-export-timeout": "2s"})
	o := mustRun(t, r)
	if image.Matched() == 0 || cache.Matched() == 0 {
		t.Fatalf("image PUTs %d, cache PUTs %d: the faults never happened", image.Matched(), cache.Matched())
	}
	d, found, err := teststack.Manifest(s.Registry+"/slow-push:latest", nil)
	if err != nil || !found || d.Digest.String() != o["digest"] {
		t.Errorf("the run succeeded with digest %q, but the registry has found=%v err=%v", o["digest"], found, err)
	}
	if !strings.Contains(r.Stdout(), "::warning::cache not saved to "+o["cache-ref"]) {
		t.Errorf("no warning about the stopped cache export:\n%s", r.Stdout())
	}
}

// An image the registry refuses fails the run at once, with the registry's
// message (the build is not tried again without its cache either).
func TestImagePushFailureFailsTheRun(t *testing.T) {
	s := teststack.Get(t)
	rule := &faultproxy.Rule{Method: "PUT", Path: `^/v2/push-fails/manifests/latest$`, Status: 403,
		Body: `{"errors":[{"code":"DENIED","message":"faultproxy: no push for you"}]}`}
	p := faultyRegistry(t, s, rule)
	r := pushRun(t, s, "push-fails", "main", map[string]string{"registry": p.URL})
	err := execRun(t, r)
	if err == nil {
		t.Fatalf("the run succeeded without its image:\n%s", r.Stdout())
	}
	image := p.Host + "/push-fails:latest"
	if want := "::error::push " + image + ": failed to solve: failed to push " + image + ": denied: faultproxy: no push for you"; !strings.Contains(r.Stdout(), want) {
		t.Errorf("output lacks %q:\n%s", want, r.Stdout())
	}
	if rule.Matched() != 1 || strings.Count(r.Stdout(), "[2/4] RUN") != 1 {
		t.Errorf("the manifest PUT was tried %d times, the build ran %d times; want once each", rule.Matched(), strings.Count(r.Stdout(), "[2/4] RUN"))
	}
	if _, found, _ := teststack.Manifest(s.Registry+"/push-fails:latest", nil); found {
		t.Error("the image tag exists")
	}
}

// An image push the registry throttles (429) is tried again after a wait:
// BuildKit gives up after five attempts at once.
func TestThrottledImagePushIsRetried(t *testing.T) {
	t.Parallel() // mostly waiting, and no prune
	s := teststack.Get(t)
	t.Run("then accepted", func(t *testing.T) {
		t.Parallel()
		rule := &faultproxy.Rule{Method: "PUT", Path: `^/v2/throttled-push/manifests/latest$`, Status: 429, RetryAfter: time.Second, Count: 7}
		p := faultyRegistry(t, s, rule)
		r := pushRun(t, s, "throttled-push", "main", map[string]string{"registry": p.URL})
		o := mustRun(t, r)
		if rule.Matched() != 8 {
			t.Errorf("%d manifest PUTs; want 7 throttled, then the one that went through", rule.Matched())
		}
		d, found, err := teststack.Manifest(s.Registry+"/throttled-push:latest", nil)
		if err != nil || !found || d.Digest.String() != o["digest"] {
			t.Errorf("image: found=%v err=%v; digest output %q", found, err, o["digest"])
		}
	})
	t.Run("always", func(t *testing.T) {
		t.Parallel()
		rule := &faultproxy.Rule{Method: "PUT", Path: `^/v2/throttled-always/manifests/latest$`, Status: 429, RetryAfter: time.Second}
		p := faultyRegistry(t, s, rule)
		r := pushRun(t, s, "throttled-always", "main", map[string]string{"registry": p.URL})
		_, err := tryRun(t, r)
		if err == nil || !strings.Contains(err.Error(), ": failed to push "+p.Host+"/throttled-always:latest: toomanyrequests: faultproxy: injected 429 Too Many Requests (5 attempts over ") {
			t.Errorf("run error %v; want the registry's message after 5 attempts", err)
		}
		if rule.Matched() != 25 {
			t.Errorf("%d manifest PUTs; want 5 attempts of BuildKit's 5", rule.Matched())
		}
		if _, found, _ := teststack.Manifest(s.Registry+"/throttled-always:latest", nil); found {
			t.Error("the image tag exists")
		}
	})
}

// A cache ref the registry cannot tell about (503 on the probe, after the
// retries) is warned about and still imported: a probe never costs the cache.
func TestProbeFailureWarnsAndStillImports(t *testing.T) {
	s := teststack.Get(t)
	o := mustRun(t, pushRun(t, s, "probe-fails", "main", nil))
	prune(t, s)

	// BuildKit resolves a cache tag with HEAD; the action probes with GET.
	rule := &faultproxy.Rule{Method: "GET", Path: `^/v2/probe-fails/manifests/cache-`, Status: 503}
	p := faultyRegistry(t, s, rule)
	r := pushRun(t, s, "probe-fails", "main", map[string]string{"registry": p.URL})
	warm := mustRun(t, r)
	ref := withHost(o["cache-ref"], p.Host)
	want := "::warning::cache ref " + ref + ": could not be checked, imported anyway: GET " + p.URL + "/v2/probe-fails/manifests/"
	if !strings.Contains(r.Stdout(), want) || !strings.Contains(r.Stdout(), "injected 503 Service Unavailable") {
		t.Errorf("output lacks %q ... 503:\n%s", want, r.Stdout())
	}
	if rule.Matched() < 2 {
		t.Errorf("the probe was tried %d times, want retries", rule.Matched())
	}
	if c, n := steps(t, warm); c != 3 || n != 3 || warm["cache-from"] != ref {
		t.Errorf("%d/%d steps cached, cache-from %q; want 3/3 from %s", c, n, warm["cache-from"], ref)
	}
}

const ecrTarget = "AmazonEC2ContainerRegistry_V20150921."

// faultyECR starts the ECR double in front of the stack's registry with rules
// on both its API and registry front.
func faultyECR(t *testing.T, s *teststack.Stack, repo string, rules ...*faultproxy.Rule) *fakeecr.Server {
	t.Helper()
	f, err := faultproxy.New(rules...)
	if err != nil {
		t.Fatal(err)
	}
	e, err := fakeecr.Start(fakeecr.Config{Upstream: "http://" + s.Registry, Wrap: f.Wrap, Repositories: []fakeecr.Repository{{Name: repo}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// Throttled ECR API and registry calls are retried: the run succeeds.
func TestECRThrottlingIsRetried(t *testing.T) {
	s := teststack.Get(t)
	token := &faultproxy.Rule{Header: map[string]string{"X-Amz-Target": ecrTarget + "GetAuthorizationToken"}, Count: 1, Status: 429, RetryAfter: time.Second}
	describe := &faultproxy.Rule{Header: map[string]string{"X-Amz-Target": ecrTarget + "DescribeRepositories"}, Count: 2,
		Status: 400, Body: `{"__type":"ThrottlingException","message":"Rate exceeded"}`}
	probe := &faultproxy.Rule{Method: "GET", Path: `^/v2/ecr-throttled/manifests/cache-`, Count: 1, Status: 429, RetryAfter: time.Second}
	e := faultyECR(t, s, "ecr-throttled", token, describe, probe)
	r := ecrRun(t, s, e, "ecr-throttled", nil)
	if err := execRun(t, r); err != nil {
		t.Fatalf("run: %v\n%s", err, r.Stdout())
	}
	// The probe is tried twice; the third GET marks the exported cache with its inputs.
	if token.Matched() != 2 || describe.Matched() != 3 || probe.Matched() != 3 {
		t.Errorf("attempts: token %d, describe %d, cache manifest GETs %d; want 2, 3, 3", token.Matched(), describe.Matched(), probe.Matched())
	}
	if strings.Contains(r.Stdout(), "could not be checked") {
		t.Errorf("the throttled probe was not retried:\n%s", r.Stdout())
	}
	if _, found, err := teststack.Manifest(e.RegistryHost+"/ecr-throttled:latest", ecrAuth(e)); err != nil || !found {
		t.Errorf("image not pushed: found=%v err=%v", found, err)
	}
}

// An ECR that stays unavailable fails the run with a clear error, after a
// bounded number of tries, before anything is built.
func TestECRUnavailableFailsClearlyBeforeBuilding(t *testing.T) {
	s := teststack.Get(t)
	token := &faultproxy.Rule{Header: map[string]string{"X-Amz-Target": ecrTarget + "GetAuthorizationToken"}, Status: 503,
		Body: `{"__type":"ServiceUnavailableException","message":"Service Unavailable"}`}
	e := faultyECR(t, s, "ecr-down", token)
	r := ecrRun(t, s, e, "ecr-down", nil)
	err := execRun(t, r)
	if err == nil {
		t.Fatalf("the run succeeded without ECR:\n%s", r.Stdout())
	}
	want := "::error::get ECR authorization token: ECR did not answer after 5 attempts: ECR unavailable: operation error ECR: GetAuthorizationToken, exceeded maximum number of attempts, 5, https response error StatusCode: 503"
	if !strings.Contains(r.Stdout(), want) {
		t.Errorf("output lacks %q:\n%s", want, r.Stdout())
	}
	if token.Matched() != 5 || strings.Contains(r.Stdout(), "[1/") {
		t.Errorf("gave up after %d token requests, build started: %v; want 5, not started", token.Matched(), strings.Contains(r.Stdout(), "[1/"))
	}
}

// DescribeRepositories only guards against immutable tags: when ECR keeps failing
// it, the run warns and builds.
func TestECRDescribeUnavailableWarnsAndBuilds(t *testing.T) {
	s := teststack.Get(t)
	describe := &faultproxy.Rule{Header: map[string]string{"X-Amz-Target": ecrTarget + "DescribeRepositories"}, Status: 503,
		Body: `{"__type":"ServiceUnavailableException","message":"Service Unavailable"}`}
	e := faultyECR(t, s, "ecr-describe-down", describe)
	r := ecrRun(t, s, e, "ecr-describe-down", nil)
	if err := execRun(t, r); err != nil {
		t.Fatalf("run: %v\n%s", err, r.Stdout())
	}
	if !strings.Contains(r.Stdout(), "::warning::could not check whether ecr-describe-down allows overwriting cache tags") || describe.Matched() != 5 {
		t.Errorf("%d describe attempts; want 5 and a warning:\n%s", describe.Matched(), r.Stdout())
	}
	if _, found, err := teststack.Manifest(e.RegistryHost+"/ecr-describe-down:latest", ecrAuth(e)); err != nil || !found {
		t.Errorf("image not pushed: found=%v err=%v", found, err)
	}
}

// Invalid inputs fail the run with every problem in one message, before the
// registry sees a single request.
func TestBadInputFailsBeforeAnyRequest(t *testing.T) {
	s := teststack.Get(t)
	every := &faultproxy.Rule{}
	p := faultyRegistry(t, s, every)
	r := pushRun(t, s, "Bad-Input", "main", map[string]string{
		"registry":          p.URL,
		"tags":              "v 1",
		"cache-mode":        "everything",
		"build-args":        "BASE=" + s.BaseImage + "\nNOEQUALS",
		"file":              appDir(t) + "/Missing.Dockerfile",
		"platforms":         "linux/amd64,not-a-platform!",
		"compression":       "zstd",
		"compression-level": "30",
	})
	err := execRun(t, r)
	if err == nil {
		t.Fatalf("bad inputs passed:\n%s", r.Stdout())
	}
	out := r.Stdout()
	if n := strings.Count(out, "::error::"); n != 1 {
		t.Errorf("%d error messages, want one listing every problem:\n%s", n, out)
	}
	for _, want := range []string{`repository: "Bad-Input"`, `tags: "v 1"`, `cache-mode: "everything"`, `build-args: line 2 has no '='`,
		`file: Dockerfile "` + appDir(t) + `/Missing.Dockerfile" not found`, `platforms: "not-a-platform!"`,
		`compression-level: "30" is not a whole number from 0 to 22 (zstd's levels)`} {
		if !strings.Contains(out, want) {
			t.Errorf("the message lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "NOEQUALS") {
		t.Errorf("the message shows the bad build-args line, which may hold a secret:\n%s", out)
	}
	if every.Matched() != 0 {
		t.Errorf("the registry got %d requests from a run with bad inputs", every.Matched())
	}
}
