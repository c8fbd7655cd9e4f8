package run_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

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
// the pull request's code: it writes no tag at all, image or cache.
func TestForkTriggeredWorkflowRunWritesNoTag(t *testing.T) {
	s := teststack.Get(t)
	mustRun(t, pushRun(t, s, "pwn-request", "main", nil))
	before := tags(t, s.Registry+"/pwn-request")

	for _, ev := range []struct{ name, fixture string }{
		{"workflow_run", "workflow_run_fork_pull_request.json"},
		{"issue_comment", "issue_comment_pull_request.json"},
	} {
		r := pushRun(t, s, "pwn-request", "main", map[string]string{"tags": "pwned", "cache-export": "true"})
		fixtureEvent(t, r, ev.name, "refs/heads/main", ev.fixture)
		o := mustRun(t, r)
		if o["cache-ref"] != "" || o["pushed"] != "false" {
			t.Errorf("%s: cache-ref %q, pushed %s; want no export and no push", ev.name, o["cache-ref"], o["pushed"])
		}
		if after := tags(t, s.Registry+"/pwn-request"); !slices.Equal(after, before) {
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
