package run

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/config"
	"github.com/ecr-build-cache/ecr-build-cache/internal/ghout"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
)

// fakeGitHubAPI answers GET /repos/octo-org/app/branches/{branch} with
// GitHub's real shape (githubapi's testdata), the branch at heads[branch];
// other branches get GitHub's 404.
func fakeGitHubAPI(t *testing.T, heads map[string]string) *httptest.Server {
	t.Helper()
	shape, err := os.ReadFile("../githubapi/testdata/branch.json")
	if err != nil {
		t.Fatal(err)
	}
	notFound, err := os.ReadFile("../githubapi/testdata/branch_not_found.json")
	if err != nil {
		t.Fatal(err)
	}
	pulls, err := os.ReadFile("../githubapi/testdata/commit_pulls.json")
	if err != nil {
		t.Fatal(err)
	}
	const shapeSHA, shapeName = "ec26c3e57ca3a959ca5aad62de7213c562f8c821", "release/2.x"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		branch, ok := strings.CutPrefix(r.URL.Path, "/repos/octo-org/app/branches/")
		sha, known := heads[branch]
		switch {
		case r.Header.Get("Authorization") != "Bearer ghs_fake":
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/repos/octo-org/app/commits/"+pushedSHA+"/pulls":
			_, _ = w.Write(pulls)
		case ok && known:
			body := strings.ReplaceAll(strings.ReplaceAll(string(shape), shapeSHA, sha), shapeName, branch)
			_, _ = w.Write([]byte(body))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write(notFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// payload is a real-shaped event payload from cacheref's testdata.
func payload(t *testing.T, fixture string) []byte {
	t.Helper()
	b, err := os.ReadFile("../cacheref/testdata/" + fixture)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// apiAction is a step of octo-org/app whose GitHub API is srv, with what it
// prints.
func apiAction(srv *httptest.Server) (*githubactions.Action, *bytes.Buffer) {
	env := map[string]string{"GITHUB_API_URL": srv.URL, "GITHUB_REPOSITORY": "octo-org/app"}
	out := &bytes.Buffer{}
	w := ghout.NewWriter(out)
	return githubactions.New(githubactions.WithGetenv(func(k string) string { return env[k] }), githubactions.WithWriter(w.Commands())), out
}

// pushedSHA is the head commit of the push fixtures; the fake API says it
// merged pull request #7 (a rebase merge: its message names none).
const pushedSHA = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"

// A push to the default branch whose messages name no pull request asks the
// GitHub API which one it merged, and imports that pull request's cache after
// its own; without a token, or when the API fails, it reads as before.
func TestAskMergedFindsARebaseMerge(t *testing.T) {
	t.Parallel()
	srv := fakeGitHubAPI(t, nil)
	for _, tc := range []struct {
		name, fixture, token string
		merged               []int
		log                  string
	}{
		{"a rebase merge, asked", "push_branch.json", "ghs_fake", []int{7}, ""},
		{"no github-token", "push_branch.json", "", nil, "no github-token to ask which pull request commit " + pushedSHA + " merged"},
		{"the API refuses the token", "push_branch.json", "wrong", nil, "::notice::could not ask the GitHub API which pull request this push merged"},
		{"a squash message names it: not asked", "push_main_squash.json", "wrong", []int{42}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, out := apiAction(srv)
			cfg := &config.Config{Cache: config.Cache{CacheExport: cacheref.ExportAuto, CacheFromMerged: true}, GitHubToken: tc.token,
				Event: cacheref.Event{Name: "push", Ref: "refs/heads/main", Payload: payload(t, tc.fixture)}}
			policy, err := decidePolicy(a, cfg)
			if err != nil {
				t.Fatal(err)
			}
			api, err := githubAPI(a, cfg.GitHubToken)
			if err != nil {
				t.Fatal(err)
			}
			policy = askMerged(t.Context(), a, api, policy)
			var want []cacheref.Key
			want = append(want, cacheref.BranchKey("main"))
			for _, n := range tc.merged {
				want = append(want, cacheref.PRKey(n))
			}
			if !slices.Equal(policy.Reads, want) || !slices.Equal(policy.Merged, tc.merged) {
				t.Errorf("Reads %v, Merged %v; want %v, %v\n%s", policy.Reads, policy.Merged, want, tc.merged, out.String())
			}
			if !strings.Contains(out.String(), tc.log) {
				t.Errorf("log lacks %q:\n%s", tc.log, out.String())
			}
		})
	}
}

// A workflow_run (or check suite) writes its head_branch's cache only when
// the GitHub API shows the commit built at that branch's head: after a push
// of tag main, head_branch is "main" too.
func TestProveClaim(t *testing.T) {
	t.Parallel()
	const other = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
	srv := fakeGitHubAPI(t, map[string]string{"main": other, "release/2.x": "ec26c3e57ca3a959ca5aad62de7213c562f8c821"})
	for _, tc := range []struct {
		name, fixture, token string
		writes               bool
		notice               string // in the log when the run only reads
	}{
		{"push of branch release/2.x, proven", "workflow_run_push.json", "ghs_fake", true, ""},
		{"push of tag main: branch main is elsewhere", "workflow_run_tag_push.json", "ghs_fake", false, "branch main is at " + other},
		{"no github-token", "workflow_run_push.json", "", false, "give github-token: ${{ github.token }} with permissions contents: read"},
		{"a token the API refuses", "workflow_run_push.json", "wrong", false, "401 Unauthorized"},
		{"a branch the API does not know", "workflow_run_dispatch.json", "ghs_fake", false, "has no branch hotfix/crash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, out := apiAction(srv)
			cfg := &config.Config{Cache: config.Cache{CacheExport: cacheref.ExportAuto}, GitHubToken: tc.token,
				Event: cacheref.Event{Name: "workflow_run", Ref: "refs/heads/main", Payload: payload(t, tc.fixture)}}
			policy, err := decidePolicy(a, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if policy.Writes || policy.Claim.IsZero() {
				t.Fatalf("before the proof: Writes %v, Claim %+v; want a claim and no write", policy.Writes, policy.Claim)
			}
			api, err := githubAPI(a, cfg.GitHubToken)
			if err != nil {
				t.Fatal(err)
			}
			policy = proveClaim(t.Context(), a, api, policy)
			if policy.Writes != tc.writes {
				t.Errorf("Writes %v, want %v (%s)\n%s", policy.Writes, tc.writes, policy.Reason, out.String())
			}
			if !tc.writes && (!strings.Contains(out.String(), "::notice::") || !strings.Contains(out.String(), tc.notice) || !strings.Contains(policy.Reason, "only reads")) {
				t.Errorf("want a notice saying %q and that the run only reads:\n%s", tc.notice, out.String())
			}
		})
	}
}

// The client the run builds honours GITHUB_API_URL and refuses one that is not a URL.
func TestGitHubAPIFromTheEnvironment(t *testing.T) {
	t.Parallel()
	env := map[string]string{"GITHUB_API_URL": "ftp://ghe.example.com/api/v3"}
	a := githubactions.New(githubactions.WithGetenv(func(k string) string { return env[k] }))
	if _, err := githubAPI(a, "t"); err == nil || !strings.Contains(err.Error(), "GITHUB_API_URL") {
		t.Errorf("githubAPI with an ftp URL: %v", err)
	}
	if api, err := githubAPI(a, ""); api != nil || err != nil {
		t.Errorf("githubAPI without a token = %v, %v; want nil, nil", api, err)
	}
}

// FakeGitHubAPI lets the stack-backed tests (package run_test) ask the same fake.
var FakeGitHubAPI = fakeGitHubAPI

// What an untrusted policy withholds never reaches the build request, and the
// notice names it; untrusted-entitlements passes it all.
func TestRequestWithholdsEntitlements(t *testing.T) {
	t.Parallel()
	fork := payload(t, "pull_request_fork.json")
	for _, tc := range []struct {
		name    string
		network string
		grant   bool
		notice  string // "" for none
	}{
		{"host network withheld", "host", false, "allow: security.insecure, network.host, network: host, buildkit-host-network withheld"},
		{"network none stays", "none", false, "allow: security.insecure, network.host, buildkit-host-network withheld"},
		{"granted", "host", true, ""},
	} {
		r, out, _ := testRunner(t, &fakeSolver{}, &fakeRegistry{}, true)
		r.with(func(c *config.Config) {
			c.Allow, c.Network, c.BuildkitHostNetwork = []string{"security.insecure", "network.host"}, tc.network, true
			c.UntrustedEntitlements = tc.grant
			c.Event = cacheref.Event{Name: "pull_request", Ref: "refs/pull/43/merge", Payload: fork}
		})
		req := r.request(decided(t, r))
		switch {
		case tc.grant && (len(req.Entitlements) != 2 || req.Network != "host" || strings.Contains(out.String(), "withheld")):
			t.Errorf("%s: entitlements %q, network %q; want both passed, no notice\n%s", tc.name, req.Entitlements, req.Network, out)
		case !tc.grant && (len(req.Entitlements) != 0 || req.Network == "host" || !strings.Contains(out.String(), "::notice::") || !strings.Contains(out.String(), tc.notice)):
			t.Errorf("%s: entitlements %q, network %q; want none, with a notice naming %q\n%s", tc.name, req.Entitlements, req.Network, tc.notice, out)
		case !tc.grant && tc.network == "none" && req.Network != "none":
			t.Errorf("%s: network %q, want none kept", tc.name, req.Network)
		}
	}
}

// The import's served-by pick and the words the log and the summary use for
// each probed ref (moved out of the registry client, which only transports).
func TestProbeStateAndServedBy(t *testing.T) {
	t.Parallel()
	main := registry.Ref{Ref: "r/app:cache-main", Kind: registry.Cache, Complete: true, Layers: map[string]bool{"base": true, "deps": true}}
	other := registry.Ref{Ref: "r/app:cache-other", Kind: registry.Cache, Complete: true, Layers: map[string]bool{"base": true}}
	image := registry.Ref{Ref: "r/app:cache-image", Kind: registry.NotCache, Layers: map[string]bool{"base": true, "deps": true, "src": true}}
	built := map[string]bool{"base": true, "deps": true, "src": true}
	if got := servedBy([]registry.Ref{other, main}, built); got != main.Ref {
		t.Errorf("servedBy = %q; want cache-main, which holds two of the image's layers", got)
	}
	if got := servedBy([]registry.Ref{other, {Ref: "r/app:cache-tie", Layers: map[string]bool{"deps": true}}}, built); got != other.Ref {
		t.Errorf("servedBy on a tie = %q; want the higher-priority cache-other", got)
	}
	if got := servedBy(nil, built); got != "" {
		t.Errorf("servedBy with nothing imported = %q", got)
	}
	for _, tc := range []struct {
		p                registry.Ref
		imported, served bool
		want             string
	}{
		{main, true, true, "imported, served the hits"},
		{main, true, false, "imported"},
		{registry.Ref{Ref: "x", Err: errors.New("403")}, true, false, "could not be checked, imported anyway"},
		{registry.Ref{Ref: "x", Kind: registry.Cache, Missing: []string{"sha256:aa"}}, false, false, "damaged: the registry lacks 1 of its blobs (sha256:aa), not imported"},
		{registry.Ref{Ref: "x", Unreachable: true, Err: errors.New("timeout")}, false, false, "did not answer in time, not imported"},
		{image, false, false, "not a BuildKit cache"},
		{other, false, false, "found, not needed"},
		{registry.Ref{Ref: "x"}, false, false, "not found"},
	} {
		if got := probeState(tc.p, tc.imported, tc.served); !strings.Contains(got, tc.want) {
			t.Errorf("probeState(%+v, %v, %v) = %q, want %q", tc.p, tc.imported, tc.served, got, tc.want)
		}
	}
}
