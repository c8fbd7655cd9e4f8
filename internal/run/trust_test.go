package run_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ecr-build-cache/ecr-build-cache/internal/run"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// fixtureEvent gives r the event of a real-shaped payload from cacheref's testdata.
func fixtureEvent(t *testing.T, r *teststack.ActionRun, name, ref, fixture string) {
	t.Helper()
	payload, err := os.ReadFile("../cacheref/testdata/" + fixture)
	if err != nil {
		t.Fatal(err)
	}
	r.Event(t, name, ref, string(payload))
}

// A workflow_run triggered by a fork's pull request runs with the base
// repository's secrets on the default branch's GITHUB_REF, and typically builds
// the pull request's code: it writes no tag at all, image or cache. So do
// check_suite, check_run and status for a fork's commit.
func TestForkTriggeredWorkflowRunWritesNoTag(t *testing.T) {
	s := teststack.Get(t)
	mustRun(t, pushRun(t, s, "pwn-request", "main", nil))
	before := teststack.MustTags(t, s.Registry+"/pwn-request")

	for _, ev := range []struct{ name, fixture string }{
		{"workflow_run", "workflow_run_fork_pull_request.json"},
		{"issue_comment", "issue_comment_pull_request.json"},
		// A fork's commit: GitHub's shapes name no fork (head_branch null,
		// pull_requests [], branches []), and nothing proves a branch here.
		{"check_suite", "check_suite_fork.json"},
		{"check_run", "check_run_fork.json"},
		{"status", "status_fork.json"},
	} {
		r := pushRun(t, s, "pwn-request", "main", map[string]string{"tags": "pwned", "cache-export": "true"})
		fixtureEvent(t, r, ev.name, "refs/heads/main", ev.fixture)
		o := mustRun(t, r)
		if o["cache-ref"] != "" || o["pushed"] != "false" {
			t.Errorf("%s: cache-ref %q, pushed %s; want no export and no push", ev.name, o["cache-ref"], o["pushed"])
		}
		if after := teststack.MustTags(t, s.Registry+"/pwn-request"); !slices.Equal(after, before) {
			t.Errorf("%s: tags changed from %q to %q", ev.name, before, after)
		}
	}
}

// An untrusted build gets no secrets unless the workflow opts in, and pushes
// its image only with untrusted-push (a preview-image workflow's choice); its
// cache is never written either way.
func TestUntrustedRunWithholdsSecretsAndPushesOnlyWhenAsked(t *testing.T) {
	s := teststack.Get(t)
	for _, optIn := range []bool{false, true} {
		in := inputsApp(t)
		in["tags"] = "preview"
		if optIn {
			in["untrusted-push"], in["untrusted-secrets"] = "true", "true"
		}
		r := pushRun(t, s, "untrusted-optin", "main", in)
		fixtureEvent(t, r, "pull_request", "refs/pull/43/merge", "pull_request_fork.json")
		o, err := tryRun(t, r)
		image := s.Registry + "/untrusted-optin:preview"
		_, pushed, _ := teststack.Manifest(image, nil)
		switch {
		case !optIn:
			// testdata/inputs needs its secrets: withheld, the build fails, and says why.
			if err == nil || !strings.Contains(r.Stdout(), "secrets, secret-files, secret-envs, github-token and ssh are withheld") || pushed {
				t.Errorf("without opt-in: err %v, pushed %v; want the secret step to fail with the notice, nothing pushed\n%s", err, pushed, r.Stdout())
			}
		case err != nil:
			t.Errorf("with opt-in: %v\n%s", err, r.Stdout())
		default:
			if got, ferr := teststack.ImageFile(image, "/token-length", nil); ferr != nil || strings.TrimSpace(got) != strconv.Itoa(len(secretValue)) || !pushed || o["pushed"] != "true" || o["cache-ref"] != "" {
				t.Errorf("with opt-in: pushed %v (%s), cache-ref %q, /secret-len %q %v", pushed, o["pushed"], o["cache-ref"], got, ferr)
			}
		}
	}
}

// An unreadable event payload does not fail a push build that needs nothing
// from it: it falls back to GITHUB_REF, with a warning.
func TestUnreadablePayloadFallsBackForAPush(t *testing.T) {
	s := teststack.Get(t)
	r := pushRun(t, s, "bad-payload", "feature/x", nil)
	r.Event(t, "push", "refs/heads/feature/x", "{not json")
	o := mustRun(t, r)
	if !strings.Contains(o["cache-ref"], ":cache-feature-x-") || !strings.Contains(r.Stdout(), "::warning::") {
		t.Errorf("cache-ref %q; want the branch's, with a warning about the payload\n%s", o["cache-ref"], r.Stdout())
	}
}

// A context with actions/checkout's persisted token and no .dockerignore for
// .git gets a warning before the build: COPY . . would put the token in the image.
func TestPersistedCheckoutTokenInContextWarns(t *testing.T) {
	s := teststack.Get(t)
	dir := appCopy(t)
	if err := os.MkdirAll(filepath.Join(dir, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := "[http \"https://github.com/\"]\n\textraheader = AUTHORIZATION: basic eC1hY2Nlc3MtdG9rZW46Z2hzX3h4eA==\n"
	if err := os.WriteFile(filepath.Join(dir, ".git", "config"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r := pushRun(t, s, "git-token", "main", map[string]string{"context": dir})
	mustRun(t, r)
	if !strings.Contains(r.Stdout(), "::warning::the build context's .git/config holds a persisted credential") {
		t.Errorf("no warning about the persisted checkout token:\n%s", r.Stdout())
	}
}

// A workflow_run after a push of tag "main" says head_branch "main", event
// push: it writes main's cache only when the GitHub API shows main's head at
// the commit built. Without that proof it only reads, and says how to let it
// write; a real branch push, proven, writes its branch's cache.
func TestTrustWorkflowRunWritesItsBranchOnlyWhenProven(t *testing.T) {
	s := teststack.Get(t)
	api := run.FakeGitHubAPI(t, map[string]string{
		"main":        "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
		"release/2.x": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
	})
	for _, tc := range []struct {
		repo, fixture, token, notice string
		cacheTag                     string // the cache tag prefix written; "" for none
	}{
		{"wr-tag-main", "workflow_run_tag_push.json", "ghs_fake", "branch main is at 6113728f27ae82c7b1a177c8d03f9e96e0adf246", ""},
		{"wr-no-token", "workflow_run_push.json", "", "give github-token", ""},
		{"wr-proven", "workflow_run_push.json", "ghs_fake", "", "cache-release-2.x-"},
	} {
		repo := tc.repo
		r := pushRun(t, s, repo, "main", map[string]string{"github-token": tc.token})
		r.Env["GITHUB_API_URL"], r.Env["GITHUB_REPOSITORY"] = api.URL, "octo-org/app"
		fixtureEvent(t, r, "workflow_run", "refs/heads/main", tc.fixture)
		o := mustRun(t, r)
		var cacheTags []string
		for _, tag := range teststack.MustTags(t, s.Registry+"/"+repo) {
			if strings.HasPrefix(tag, "cache-") {
				cacheTags = append(cacheTags, tag)
			}
		}
		switch {
		case tc.cacheTag == "" && (o["cache-ref"] != "" || len(cacheTags) > 0 || !strings.Contains(r.Stdout(), "::notice::") || !strings.Contains(r.Stdout(), tc.notice)):
			t.Errorf("%s: cache-ref %q, cache tags %q; want none, with a notice saying %q\n%s", repo, o["cache-ref"], cacheTags, tc.notice, r.Stdout())
		case tc.cacheTag != "" && (len(cacheTags) != 1 || !strings.HasPrefix(cacheTags[0], tc.cacheTag) || !strings.HasSuffix(o["cache-ref"], ":"+cacheTags[0])):
			t.Errorf("%s: cache-ref %q, cache tags %q; want one %s... tag\n%s", repo, o["cache-ref"], cacheTags, tc.cacheTag, r.Stdout())
		}
	}
}

// An untrusted build loses allow unless untrusted-entitlements grants it
// (network: host and buildkit-host-network too: TestRequestWithholdsEntitlements).
// The stack's daemon allows no insecure entitlement, so BuildKit's own
// refusal shows whether allow reached it.
func TestTrustUntrustedBuildLosesEntitlements(t *testing.T) {
	s := teststack.Get(t)
	for _, optIn := range []bool{false, true} {
		in := map[string]string{"allow": "security.insecure"}
		if optIn {
			in["untrusted-entitlements"] = "true"
		}
		r := optsRun(t, s, "untrusted-insecure", "insecure", in)
		fixtureEvent(t, r, "pull_request", "refs/pull/43/merge", "pull_request_fork.json")
		err := failRun(t, r)
		notice := "allow: security.insecure withheld from this build"
		switch {
		case !optIn && (strings.Contains(err.Error(), "granting entitlement") || !strings.Contains(err.Error(), "security.insecure is not allowed") || !strings.Contains(r.Stdout(), notice)):
			t.Errorf("without opt-in: %v; want the entitlement withheld (the RUN step refused), with the notice\n%s", err, r.Stdout())
		case optIn && (!strings.Contains(err.Error(), "granting entitlement security.insecure is not allowed by build daemon configuration") || strings.Contains(r.Stdout(), notice)):
			t.Errorf("with opt-in: %v; want the entitlement asked of the daemon, no notice\n%s", err, r.Stdout())
		}
	}
}

// Image tags in the cache's namespace are refused before anything is pushed:
// a fork's branch named like main's cache tag must not overwrite it.
func TestTrustImageTagsInTheCacheNamespaceAreRefused(t *testing.T) {
	s := teststack.Get(t)
	mustRun(t, pushRun(t, s, "tag-clash", "main", nil))
	before := teststack.MustTags(t, s.Registry+"/tag-clash")
	var mainCache string
	for _, tag := range before {
		if strings.HasPrefix(tag, "cache-main-") {
			mainCache = tag
		}
	}
	r := pushRun(t, s, "tag-clash", "main", map[string]string{"tags": "v1\n" + mainCache})
	err := failRun(t, r)
	if !strings.Contains(err.Error(), "would overwrite cache tags") || !strings.Contains(err.Error(), mainCache) {
		t.Errorf("error %v; want one naming %s as a cache tag", err, mainCache)
	}
	if after := teststack.MustTags(t, s.Registry+"/tag-clash"); !slices.Equal(after, before) {
		t.Errorf("tags changed from %q to %q", before, after)
	}
}
