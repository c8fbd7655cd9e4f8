package faultproxy_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/faultproxy"
)

// start runs an in-memory registry behind a fault proxy with rules.
func start(t *testing.T, rules ...*faultproxy.Rule) (upstream string, proxy *faultproxy.Server) {
	t.Helper()
	up := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(up.Close)
	return up.URL, faultproxy.Serve(t, up.URL, rules...)
}

func do(t *testing.T, method, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestThrottleOnceWithRetryAfter(t *testing.T) {
	t.Parallel()
	rule := &faultproxy.Rule{Method: "GET", Path: `^/v2/app/manifests/`, Count: 1, Status: 429, RetryAfter: 3 * time.Second}
	_, p := start(t, rule)

	resp, body := do(t, "GET", p.URL+"/v2/app/manifests/latest", nil)
	var e struct {
		Errors []struct{ Code, Message string }
	}
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" || json.Unmarshal([]byte(body), &e) != nil ||
		len(e.Errors) != 1 || e.Errors[0].Code != "TOOMANYREQUESTS" || e.Errors[0].Message != "faultproxy: injected 429 Too Many Requests" {
		t.Fatalf("first request: %s, Retry-After %q, body %s", resp.Status, resp.Header.Get("Retry-After"), body)
	}
	// The next one reaches the registry, which has no such manifest.
	if resp, body := do(t, "GET", p.URL+"/v2/app/manifests/latest", nil); resp.StatusCode != 404 || !strings.Contains(body, "NAME_UNKNOWN") {
		t.Errorf("second request: %s %s; want the registry's 404", resp.Status, body)
	}
	// Other paths and methods are neither harmed nor counted.
	if resp, _ := do(t, "GET", p.URL+"/v2/", nil); resp.StatusCode != 200 {
		t.Errorf("GET /v2/: %s", resp.Status)
	}
	if resp, _ := do(t, "HEAD", p.URL+"/v2/app/manifests/latest", nil); resp.StatusCode != 404 {
		t.Errorf("HEAD manifest: %s", resp.Status)
	}
	if n := rule.Matched(); n != 2 {
		t.Errorf("Matched = %d, want 2", n)
	}
}

func TestUnauthorizedAfterN(t *testing.T) {
	t.Parallel()
	rule := &faultproxy.Rule{Path: `^/v2/`, After: 2, Status: 401}
	_, p := start(t, rule)
	for i, want := range []int{200, 200, 401, 401} {
		resp, _ := do(t, "GET", p.URL+"/v2/", nil)
		if resp.StatusCode != want {
			t.Errorf("request %d: %s, want %d", i+1, resp.Status, want)
		}
		if want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("request %d: 401 without a challenge", i+1)
		}
	}
	if rule.Matched() != 4 {
		t.Errorf("Matched = %d, want 4", rule.Matched())
	}
}

func TestHeaderSelectsAndFirstHarmingRuleWins(t *testing.T) {
	t.Parallel()
	target := "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories"
	describe := &faultproxy.Rule{Method: "GET", Header: map[string]string{"X-Amz-Target": target}, Status: 503, Body: `{"__type":"ServiceUnavailableException"}`}
	every := &faultproxy.Rule{Status: 500}
	_, p := start(t, describe, every)

	resp, body := do(t, "GET", p.URL+"/v2/", map[string]string{"X-Amz-Target": target})
	if resp.StatusCode != 503 || body != `{"__type":"ServiceUnavailableException"}` {
		t.Errorf("with the header: %s %s", resp.Status, body)
	}
	if resp, body := do(t, "GET", p.URL+"/v2/", nil); resp.StatusCode != 500 || !strings.Contains(body, "faultproxy: injected 500") {
		t.Errorf("without it: %s %s", resp.Status, body)
	}
	if describe.Matched() != 1 || every.Matched() != 2 {
		t.Errorf("Matched = %d, %d; want 1, 2 (every matching rule counts)", describe.Matched(), every.Matched())
	}
}

func TestDelayThenForwardOrFail(t *testing.T) {
	t.Parallel()
	slow := &faultproxy.Rule{Method: "GET", Path: `^/v2/$`, Delay: 300 * time.Millisecond}
	gateway := &faultproxy.Rule{Method: "GET", Path: `^/v2/app/`, Delay: 300 * time.Millisecond, Status: 504}
	_, p := start(t, slow, gateway)
	for path, want := range map[string]int{"/v2/": 200, "/v2/app/tags/list": 504} {
		start := time.Now()
		resp, _ := do(t, "GET", p.URL+path, nil)
		if took := time.Since(start); resp.StatusCode != want || took < 300*time.Millisecond {
			t.Errorf("GET %s: %s after %v; want %d after at least 300ms", path, resp.Status, took, want)
		}
	}
}

// An upload whose connection drops midway fails, and the registry never
// commits the blob.
func TestCloseMidUpload(t *testing.T) {
	t.Parallel()
	upload := &faultproxy.Rule{Path: `/blobs/uploads/.`, Close: true, ReadBeforeClose: 4096}
	upstream, p := start(t, upload)
	layer, err := random.Layer(1<<20, "application/vnd.oci.image.layer.v1.tar")
	if err != nil {
		t.Fatal(err)
	}
	repo, err := name.NewRepository(p.Host+"/app", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	// One attempt: go-containerregistry would retry the dropped connection.
	err = remote.WriteLayer(repo, layer, remote.WithRetryBackoff(remote.Backoff{Steps: 1}))
	if err == nil {
		t.Fatal("the upload succeeded through a dropped connection")
	}
	if upload.Matched() != 1 {
		t.Errorf("no upload request matched; err %v", err)
	}
	d, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := do(t, "HEAD", upstream+"/v2/app/blobs/"+d.String(), nil); resp.StatusCode != 404 {
		t.Errorf("blob after the cut upload: %s, want 404", resp.Status)
	}
}

// Wrap puts the faults in front of any handler, as fakeecr.Config.Wrap does.
func TestWrap(t *testing.T) {
	t.Parallel()
	rule := &faultproxy.Rule{Method: "POST", Status: 503, RetryAfter: time.Second}
	f, err := faultproxy.New(rule)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "upstream")
	})))
	defer srv.Close()
	resp, err := http.Post(srv.URL, "text/plain", bytes.NewReader([]byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("POST: %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}
	if resp, body := do(t, "GET", srv.URL, nil); resp.StatusCode != 200 || body != "upstream" {
		t.Errorf("GET: %s %q", resp.Status, body)
	}
}

func TestNewRejectsContradictoryRules(t *testing.T) {
	t.Parallel()
	for _, r := range []*faultproxy.Rule{
		{Path: "("},
		{Status: 500, Close: true},
		{RetryAfter: time.Second},
		{Close: true, Body: "x"},
	} {
		if _, err := faultproxy.New(r); err == nil {
			t.Errorf("New(%+v) accepted", r)
		}
	}
}
