package solve

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
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

// Two builds of the same Dockerfile on one daemon share vertices, and BuildKit
// reports a shared vertex to one session only (moby/buildkit#4330): the other
// sees the stage's last step cached and the steps before it never start.
func TestTallyCountsUnreportedStepsBeforeACachedOneAsCached(t *testing.T) {
	t0 := time.Unix(100, 0)
	t1 := t0.Add(time.Second)
	for _, tc := range []struct {
		name     string
		vertexes []*client.Vertex
		cached   []bool
	}{
		{"the stage's last step cached (seen in the caller e2e test)", []*client.Vertex{
			{Name: "[stage-0 2/4] RUN echo compiled"},
			{Name: "[stage-0 3/4] COPY app.txt /app/app.txt"},
			{Name: "[stage-0 4/4] RUN --mount=type=secret,id=token ...", Cached: true},
		}, []bool{true, true, true}},
		{"padded numbers are one stage", []*client.Vertex{
			{Name: "[ 9/10] RUN a"},
			{Name: "[10/10] RUN b", Cached: true},
		}, []bool{true, true}},
		{"a step after the cached one ran", []*client.Vertex{
			{Name: "[2/4] RUN a"},
			{Name: "[3/4] RUN b", Cached: true},
			{Name: "[4/4] RUN c", Started: &t0, Completed: &t1},
		}, []bool{true, true, false}},
		{"a step that started ran, whatever came after", []*client.Vertex{
			{Name: "[2/3] RUN a", Started: &t0, Completed: &t1},
			{Name: "[3/3] RUN b", Cached: true},
		}, []bool{false, true}},
		{"unreported with nothing cached after it: not counted", []*client.Vertex{
			{Name: "[2/3] RUN a"},
			{Name: "[3/3] RUN b", Started: &t0, Completed: &t1},
		}, []bool{false, false}},
		{"another stage's cached step proves nothing", []*client.Vertex{
			{Name: "[builder 2/3] RUN go build"},
			{Name: "[stage-1 2/2] COPY --from=builder /app /app", Cached: true},
		}, []bool{false, true}},
		{"a failed step is not cached", []*client.Vertex{
			{Name: "[2/3] RUN a", Error: "canceled"},
			{Name: "[3/3] RUN b", Cached: true},
		}, []bool{false, true}},
	} {
		tl := newTally()
		for i, v := range tc.vertexes {
			v.Digest = digest.FromString(fmt.Sprint(i))
		}
		tl.add(&client.SolveStatus{Vertexes: tc.vertexes})
		var got []bool
		for _, s := range tl.result() {
			got = append(got, s.Cached)
		}
		if !slices.Equal(got, tc.cached) {
			t.Errorf("%s: cached %v, want %v", tc.name, got, tc.cached)
		}
	}
}

func TestTallyTimesTheImageAndCacheExportsApart(t *testing.T) {
	t0 := time.Unix(100, 0)
	at := func(s int) *time.Time { v := t0.Add(time.Duration(s) * time.Second); return &v }
	tl := newTally()
	tl.add(&client.SolveStatus{Vertexes: []*client.Vertex{
		{Digest: digest.FromString("run"), Name: "[2/2] RUN make", Started: at(0), Completed: at(10)},
		{Digest: digest.FromString("image"), Name: "exporting to image", Started: at(10), Completed: at(13)},
		{Digest: digest.FromString("cache"), Name: "exporting cache to registry", Started: at(13), Completed: at(20)},
	}})
	if tl.imageDone != 3*time.Second || tl.exportTook() != 7*time.Second {
		t.Errorf("image export %v, cache export %v; want 3s and 7s", tl.imageDone, tl.exportTook())
	}
}

func TestStepTimesRoundTripBounded(t *testing.T) {
	times := map[string]time.Duration{
		StepKey("[2/3] RUN make"):      12345 * time.Millisecond,
		StepKey("[3/3] COPY . /src"):   50 * time.Millisecond, // too short to keep
		StepKey("[builder 2/4] RUN x"): 2 * time.Second,
	}
	enc := EncodeTimes(times)
	want := StepKey("[2/3] RUN make") + "=12.3," + StepKey("[builder 2/4] RUN x") + "=2.0"
	if enc != want {
		t.Errorf("EncodeTimes = %q, want %q (slowest first, tenths, short steps left out)", enc, want)
	}
	got := DecodeTimes(enc)
	if len(got) != 2 || got[StepKey("[2/3] RUN make")] != 12300*time.Millisecond {
		t.Errorf("DecodeTimes = %v", got)
	}

	// A Dockerfile of many steps still writes a bounded annotation.
	many := map[string]time.Duration{}
	for i := range 1000 {
		many[StepKey(fmt.Sprintf("[%d/1000] RUN step", i))] = time.Duration(i+1) * time.Second
	}
	enc = EncodeTimes(many)
	if n := strings.Count(enc, ",") + 1; n != maxTimes || len(enc) > 2500 || !strings.HasPrefix(enc, StepKey("[999/1000] RUN step")+"=1000.0,") {
		t.Errorf("1000 steps: %d entries, %d bytes, starting %.40s", n, len(enc), enc)
	}

	// What anyone with push access could have written is read safely.
	for _, bad := range []string{"", "garbage", "k=-1", "k=NaN", "k=1e99", "k==1", "=,=,"} {
		if got := DecodeTimes(bad); len(got) != 0 {
			t.Errorf("DecodeTimes(%q) = %v", bad, got)
		}
	}
}

// A long export says it is still running, with the bytes sent so far.
func TestLongExportPrintsStillRunning(t *testing.T) {
	defer func(d time.Duration) { stillRunningEvery = d }(stillRunningEvery)
	stillRunningEvery = 30 * time.Millisecond
	seen := make(chan struct{})
	out := &signalWriter{want: "still exporting cache to registry after", seen: seen}
	cache := digest.FromString("cache")
	now := time.Now()
	run := func(ctx context.Context, ch chan *client.SolveStatus) (*client.SolveResponse, error) {
		defer close(ch)
		ch <- &client.SolveStatus{
			Vertexes: []*client.Vertex{{Digest: cache, Name: "exporting cache to registry", Started: &now}},
			Statuses: []*client.VertexStatus{
				{ID: "writing layer sha256:aaa", Vertex: cache, Current: 3 << 20, Total: 8 << 20, Started: &now},
				{ID: "writing layer sha256:bbb", Vertex: cache, Current: 2 << 20, Total: 2 << 20, Started: &now},
			},
		}
		select { // the export hangs until the line is out
		case <-seen:
		case <-time.After(time.Minute):
			return nil, errors.New("no still-running line within a minute")
		}
		done := time.Now()
		ch <- &client.SolveStatus{Vertexes: []*client.Vertex{{Digest: cache, Name: "exporting cache to registry", Started: &now, Completed: &done}}}
		return &client.SolveResponse{}, nil
	}
	if _, err := solve(context.Background(), run, out, func(*client.SolveStatus) {}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), ": 5MiB sent so far") {
		t.Errorf("no bytes so far in:\n%s", out.String())
	}
}

// signalWriter is a progress display's output that closes seen once want is
// in it; the test reads seen through its own copy, never this field.
type signalWriter struct {
	mu     sync.Mutex
	buf    strings.Builder
	want   string
	seen   chan struct{}
	closed bool
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.closed && strings.Contains(w.buf.String(), w.want) {
		close(w.seen)
		w.closed = true
	}
	return len(p), nil
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
