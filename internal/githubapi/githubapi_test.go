package githubapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeAPI is GitHub's REST API for one repository, answering with its real
// JSON shapes from testdata, under /api/v3 as on GitHub Enterprise Server.
func fakeAPI(t *testing.T, handler http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv
}

func answer(t *testing.T, w http.ResponseWriter, status int, file string) {
	b, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Error(err)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func TestBranchHead(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := fakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		switch {
		case r.Header.Get("Authorization") != "Bearer ghs_test" || r.Header.Get("Accept") != "application/vnd.github+json":
			answer(t, w, http.StatusUnauthorized, "bad_credentials.json")
		case r.URL.EscapedPath() == "/api/v3/repos/octo-org/app/branches/release%2F2.x":
			answer(t, w, http.StatusOK, "branch.json")
		case r.URL.Path == "/api/v3/repos/octo-org/app/branches/renamed":
			w.Header().Set("Location", "/api/v3/repos/octo-org/app/branches/release%2F2.x")
			w.WriteHeader(http.StatusMovedPermanently)
		case r.URL.Path == "/api/v3/repos/octo-org/app/branches/down":
			w.WriteHeader(http.StatusBadGateway)
		default:
			answer(t, w, http.StatusNotFound, "branch_not_found.json")
		}
	})
	c, err := New(srv.URL+"/api/v3/", "ghs_test")
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if sha, err := c.BranchHead(ctx, "octo-org/app", "release/2.x"); err != nil || sha != "ec26c3e57ca3a959ca5aad62de7213c562f8c821" {
		t.Errorf("BranchHead(release/2.x) = %q, %v", sha, err)
	}
	if _, err := c.BranchHead(ctx, "octo-org/app", "main"); !errors.Is(err, ErrNotFound) {
		t.Errorf("BranchHead(main) error %v, want ErrNotFound", err)
	}
	// A renamed branch's redirect answers for another name: not followed.
	if sha, err := c.BranchHead(ctx, "octo-org/app", "renamed"); err == nil || !strings.Contains(err.Error(), "301") {
		t.Errorf("BranchHead(renamed) = %q, %v; want the 301 as an error", sha, err)
	}
	before := calls.Load()
	if _, err := c.BranchHead(ctx, "octo-org/app", "down"); err == nil || !strings.Contains(err.Error(), "502") {
		t.Errorf("BranchHead(down) error %v, want the 502", err)
	}
	if n := calls.Load() - before; n != 1 {
		t.Errorf("a 502 was asked %d times, want once (no retries)", n)
	}
	bad, err := New(srv.URL+"/api/v3", "wrong")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.BranchHead(ctx, "octo-org/app", "release/2.x"); err == nil || !strings.Contains(err.Error(), "401 Unauthorized: Bad credentials") {
		t.Errorf("wrong token: %v, want GitHub's message", err)
	}
	if _, err := c.BranchHead(ctx, "octo-org", "main"); err == nil || !strings.Contains(err.Error(), "not owner/name") {
		t.Errorf("bad repository: %v", err)
	}
}

// An API that never answers fails the question within the context's deadline.
func TestBranchHeadDeadline(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := fakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	c, err := New(srv.URL, "ghs_test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.BranchHead(ctx, "octo-org/app", "main"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want the deadline", err)
	}
}

func TestNewRejectsABadURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"ftp://api.example.com", "not a url", "https://"} {
		if _, err := New(u, "t"); err == nil || !strings.Contains(err.Error(), "GITHUB_API_URL") {
			t.Errorf("New(%q) error %v", u, err)
		}
	}
	if c, err := New("", "t"); err != nil || c.base.String() != DefaultURL {
		t.Errorf(`New("") = %v, %v`, c, err)
	}
}

func TestMergedPulls(t *testing.T) {
	t.Parallel()
	const sha = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
	srv := fakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/repos/octo-org/app/commits/" + sha + "/pulls":
			answer(t, w, http.StatusOK, "commit_pulls.json")
		default:
			answer(t, w, http.StatusNotFound, "branch_not_found.json")
		}
	})
	c, err := New(srv.URL, "ghs_test")
	if err != nil {
		t.Fatal(err)
	}
	// The open pull request that contains the commit is not one it merged.
	if nums, err := c.MergedPulls(t.Context(), "octo-org/app", sha); err != nil || len(nums) != 1 || nums[0] != 7 {
		t.Errorf("MergedPulls = %v, %v; want [7]", nums, err)
	}
	if _, err := c.MergedPulls(t.Context(), "octo-org/app", "ffffffffffffffffffffffffffffffffffffffff"); !errors.Is(err, ErrNotFound) {
		t.Errorf("an unknown commit: %v, want ErrNotFound", err)
	}
}
