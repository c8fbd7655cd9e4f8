package solve

import (
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

func TestIsStep(t *testing.T) {
	for name, want := range map[string]bool{
		"[2/4] RUN make":                           true,
		"[stage-1 3/3] COPY --from=deps /a /b":     true,
		"[deps 2/3] RUN go mod download":           true,
		"[ 2/55] RUN echo 2":                       true,
		"[stage-1  3/12] COPY a b":                 true,
		"[linux/amd64 builder 2/4] RUN make":       true,
		"[ 1/55] FROM base":                        false,
		"[1/4] FROM 127.0.0.1:5000/base:busybox":   false,
		"[deps 1/3] FROM docker.io/library/golang": false,
		"[internal] load build definition":         false,
		"[internal] load metadata for base":        false,
		"exporting to image":                       false,
		"exporting cache to registry":              false,
		"importing cache manifest from r/app:c":    false,
		"[auth] app:pull token for 127.0.0.1":      false,
	} {
		if got := isStep(name); got != want {
			t.Errorf("isStep(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestTallyDedupesVertexUpdates(t *testing.T) {
	t0 := time.Unix(100, 0)
	t1 := t0.Add(2 * time.Second)
	run, cp := digest.FromString("run"), digest.FromString("copy")
	tl := newTally()
	// BuildKit reports a vertex when it starts and again when it completes.
	tl.add(&client.SolveStatus{Vertexes: []*client.Vertex{
		{Digest: run, Name: "[2/3] RUN make", Started: &t0},
		{Digest: cp, Name: "[3/3] COPY . /src", Cached: true},
		{Digest: digest.FromString("from"), Name: "[1/3] FROM base"},
	}})
	tl.add(&client.SolveStatus{Vertexes: []*client.Vertex{
		{Digest: run, Name: "[2/3] RUN make", Started: &t0, Completed: &t1},
		{Digest: digest.FromString("x"), Name: "exporting cache to registry", Error: "unexpected status 429", Started: &t0, Completed: &t1},
		// Another session's merged vertex for the same step: still one step.
		{Digest: digest.FromString("copy-other-session"), Name: "[3/3] COPY . /src", Cached: true},
	}})
	res := Result{Steps: tl.result()}
	if len(res.Steps) != 2 || res.CachedSteps() != 1 {
		t.Fatalf("steps %+v: want 2 steps, 1 cached", res.Steps)
	}
	if res.Steps[0].Duration != 2*time.Second {
		t.Errorf("RUN duration %v, want 2s", res.Steps[0].Duration)
	}
	if tl.cacheExportErr != "unexpected status 429" {
		t.Errorf("cache export err %q", tl.cacheExportErr)
	}
	if s := Slowest(res.Steps, 1); len(s) != 1 || s[0].Name != "[2/3] RUN make" {
		t.Errorf("Slowest = %+v", s)
	}
}
