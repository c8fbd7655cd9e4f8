package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

func TestReadProgress(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1, t2 := t0.Add(time.Second), t0.Add(3*time.Second)
	v := func(name string, cached bool, started, completed *time.Time) *client.Vertex {
		return &client.Vertex{Digest: digest.FromString(name), Name: name, Cached: cached, Started: started, Completed: completed}
	}
	var raw bytes.Buffer
	enc := json.NewEncoder(&raw)
	for _, st := range []client.SolveStatus{
		{Vertexes: []*client.Vertex{v("[internal] load build definition from Dockerfile", false, &t0, &t0)}},
		{Vertexes: []*client.Vertex{v("[ 1/11] FROM 127.0.0.1:5000/base:busybox", false, &t0, &t0)}},
		{Vertexes: []*client.Vertex{v("[ 2/11] RUN a", true, &t0, &t0)}},
		{Vertexes: []*client.Vertex{v("[deps  3/11] RUN b", false, &t0, nil)}},
		{Vertexes: []*client.Vertex{v("[deps  3/11] RUN b", false, &t0, &t1)}},
		{Vertexes: []*client.Vertex{v("exporting cache to registry", false, &t1, &t2)}},
	} {
		if err := enc.Encode(st); err != nil {
			t.Fatal(err)
		}
	}
	var smp sample
	cached, total, err := readProgress(&raw, &smp)
	if err != nil {
		t.Fatal(err)
	}
	if cached != 1 || total != 2 {
		t.Errorf("cached/total = %d/%d, want 1/2 (FROM and [internal] are not steps)", cached, total)
	}
	if len(smp.missed) != 1 || smp.missed[0] != "[deps  3/11] RUN b" {
		t.Errorf("missed = %q", smp.missed)
	}
	if smp.cacheExport != 2*time.Second || smp.stepsPhase != time.Second {
		t.Errorf("cache export %v, steps %v; want 2s, 1s", smp.cacheExport, smp.stepsPhase)
	}
}

func TestRegLogBetween(t *testing.T) {
	log := `time="2026-11-27T00:10:55Z" level=warning msg="No HTTP secret provided"
127.0.0.1 - - [27/Nov/2026:00:13:44 +0000] "GET /v2/?bench-mark=1 HTTP/1.1" 200 2 "" "Go-http-client/1.1"
127.0.0.1 - - [27/Nov/2026:00:13:44 +0000] "HEAD /v2/app/manifests/c HTTP/1.1" 200 3532 "" "buildkit/v0.0-dev"
127.0.0.1 - - [27/Nov/2026:00:13:44 +0000] "GET /v2/app/manifests/sha256:e1 HTTP/1.1" 200 3532 "" "buildkit/v0.0-dev"
time="2026-11-27T00:13:44Z" level=error msg="response completed with error" http.response.status=404
127.0.0.1 - - [27/Nov/2026:00:13:44 +0000] "GET /v2/app/manifests/missing HTTP/1.1" 404 91 "" "go-containerregistry/v0.22.1"
127.0.0.1 - - [27/Nov/2026:00:13:44 +0000] "GET /v2/app/blobs/sha256:d7 HTTP/1.1" 200 3501 "" "buildkit/v0.0-dev"
127.0.0.1 - - [27/Nov/2026:00:13:45 +0000] "PUT /v2/app/manifests/c HTTP/1.1" 201 0 "" "buildkit/v0.0-dev"
127.0.0.1 - - [27/Nov/2026:00:13:45 +0000] "GET /v2/?bench-mark=2 HTTP/1.1" 200 2 "" "Go-http-client/1.1"
`
	path := filepath.Join(t.TempDir(), "registry.log")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := newRegLog(path, "127.0.0.1:1").between(0, int64(len(log)))
	if err != nil {
		t.Fatal(err)
	}
	want := traffic{requests: 5, getBytes: 3532 + 3501, blobGetBytes: 3501, probeRequests: 1}
	if got != want {
		t.Errorf("traffic = %+v, want %+v", got, want)
	}
}

// TestRender checks that a full report renders from samples of every kind, with
// a number where a number is due.
func TestRender(t *testing.T) {
	r := &results{runs: 2, samples: map[key][]sample{}, imageBytes: map[string]int64{"app": 106e6, "steps": 1.1e6},
		scopes: map[string][][]sample{}, scopeRefs: map[string][]string{}}
	s := func(sec float64, cached, total int) sample {
		return sample{took: time.Duration(sec * float64(time.Second)), startup: 20 * time.Millisecond, cached: cached, total: total,
			traffic: traffic{requests: 30, getBytes: 10e3}}
	}
	for _, f := range fixtures {
		for _, tool := range tools {
			r.samples[key{f.name, "cold", tool}] = []sample{s(10, 0, 8), s(11, 0, 8)}
			r.samples[key{f.name, "warm", tool}] = []sample{s(0.3, 8, 8), s(0.4, 8, 8)}
			r.samples[key{f.name, "new branch", tool}] = []sample{s(0.3, 8, 8), s(9, 0, 8)}
			r.samples[key{f.name, "partial", tool}] = []sample{s(1, 5, 8), s(1.2, 5, 8)}
		}
	}
	for _, tool := range tools {
		g := []sample{s(0.5, 8, 8), s(0.5, 8, 8), s(0.5, 4, 8), s(0.5, 8, 8)}
		r.addGroup(key{"app", "matrix first", tool}, g)
		r.addGroup(key{"app", "matrix rebuild", tool}, g)
		r.scopes[tool] = append(r.scopes[tool], g)
	}
	for _, n := range importCounts {
		r.samples[key{"app", fmt.Sprintf("%d refs", n), toolBuildctl}] = []sample{{missed: []string{"[deps 4/4] RUN x"}}}
	}
	out := r.render()
	for _, want := range []string{"MISS  matrix rebuild fully cached", "PASS  warm <= 5% of cold (action, app)", "1 of 1 runs: [deps 4/4] RUN x"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "NaN") {
		t.Errorf("report shows NaN:\n%s", out)
	}
}
