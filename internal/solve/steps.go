package solve

import (
	"cmp"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// Step is one Dockerfile instruction as BuildKit ran (or skipped) it.
type Step struct {
	Name     string
	Cached   bool
	Duration time.Duration
	Error    string
}

// Dockerfile steps are the vertices the frontend names "[n/m] ...", "[stage n/m] ..."
// or, building several platforms, "[linux/amd64 stage n/m] ..."; n is padded to the
// width of m ("[ 2/55]"). "[internal] ..." and exporter vertices carry no such prefix.
var stepName = regexp.MustCompile(`^\[([^\]]*?)\b(\d+)/\d+\] `)

// tally folds a stream of SolveStatus updates into per-step results. BuildKit
// reports a vertex several times as it progresses, and while several builds share
// a daemon it may forward a merged vertex of another session under a different
// digest, so steps are keyed by their "[stage n/m] ..." name.
type tally struct {
	steps map[string]*Step
	order []string
	// started are the steps this session saw start.
	started map[string]bool
	// cacheExportErr is the error of a failed "exporting cache" vertex
	// (non-fatal under ignore-error=true, moby/buildkit#3430).
	cacheExportErr string
	exportStart    time.Time // when the cache export was seen to start
	// exportDone and imageDone are how long the cache export and the image
	// export (its push included) took, by the builder's clock; 0 until done.
	exportDone, imageDone time.Duration
	imageErr              string // the error of a failed "exporting to image" vertex
	image                 imageProgress
	warnings              []Warning
}

// imageProgress is what the image exporter's progress told of the image.
type imageProgress struct {
	manifest, index, config string // digests
	pushedNames             int    // names whose manifest push completed
}

// The image exporter's progress items (moby/buildkit exporter/containerimage
// and util/push): "exporting manifest sha256:...", "exporting manifest list
// sha256:...", "exporting config sha256:...", "pushing manifest for NAME".
var imageItem = regexp.MustCompile(`^(exporting manifest list|exporting manifest|exporting config) (sha256:[0-9a-f]{64})$`)

func (p *imageProgress) add(vs *client.VertexStatus) {
	if vs.Completed == nil {
		return
	}
	if strings.HasPrefix(vs.ID, "pushing manifest for ") {
		p.pushedNames++
		return
	}
	m := imageItem.FindStringSubmatch(vs.ID)
	switch {
	case m == nil:
	case m[1] == "exporting manifest list":
		p.index = m[2]
	case m[1] == "exporting manifest":
		p.manifest = m[2]
	default:
		p.config = m[2]
	}
}

// pushed returns the image's digest and config digest, and whether the
// manifest of each of its names was pushed.
func (p imageProgress) pushed(names int) (digest, config string, ok bool) {
	digest = cmp.Or(p.index, p.manifest)
	return digest, p.config, digest != "" && p.pushedNames >= names
}

// exportTook is how long the cache export took, or has run when it was stopped.
func (t *tally) exportTook() time.Duration {
	switch {
	case t.exportDone > 0:
		return t.exportDone
	case t.exportStart.IsZero():
		return 0
	}
	return time.Since(t.exportStart)
}

// stepFailed reports whether a Dockerfile step failed.
func (t *tally) stepFailed() bool {
	for _, s := range t.steps {
		if s.Error != "" {
			return true
		}
	}
	return false
}

// exportErr is the cache export's failure after a solve that succeeded:
// under ignore-error=true (moby/buildkit#3430) the solve succeeds without the
// cache's descriptor in resp, and the export's vertex carries the error.
func (t *tally) exportErr(resp *client.SolveResponse) *ExportError {
	if resp.ExporterResponse[exportedCacheKey] == "" && t.cacheExportErr != "" {
		return &ExportError{ExportFailed, t.cacheExportErr}
	}
	return nil
}

func newTally() *tally { return &tally{steps: map[string]*Step{}, started: map[string]bool{}} }

func (t *tally) add(st *client.SolveStatus) {
	for _, w := range st.Warnings {
		t.warnings = append(t.warnings, Warning{Message: string(w.Short), Location: location(w.SourceInfo, w.Range)})
	}
	for _, vs := range st.Statuses {
		t.image.add(vs)
	}
	for _, v := range st.Vertexes {
		switch {
		case strings.HasPrefix(v.Name, "exporting cache"):
			if v.Started != nil && t.exportStart.IsZero() {
				t.exportStart = time.Now() // not v.Started: the builder's clock
			}
			if v.Error != "" {
				t.cacheExportErr = v.Error
			}
			t.exportDone = max(t.exportDone, took(v))
			continue
		case strings.HasPrefix(v.Name, "exporting to image"):
			if v.Error != "" {
				t.imageErr = v.Error
			}
			t.imageDone = max(t.imageDone, took(v))
			continue
		}
		if !isStep(v.Name) {
			continue
		}
		s, ok := t.steps[v.Name]
		if !ok {
			s = &Step{Name: v.Name}
			t.steps[v.Name] = s
			t.order = append(t.order, v.Name)
		}
		s.Cached = s.Cached || v.Cached
		t.started[v.Name] = t.started[v.Name] || v.Started != nil
		if v.Error != "" {
			s.Error = v.Error
		}
		if d := took(v); d > 0 {
			s.Duration = d
		}
	}
}

// took is how long a completed vertex ran; 0 while it runs.
func took(v *client.Vertex) time.Duration {
	if v.Started == nil || v.Completed == nil {
		return 0
	}
	return v.Completed.Sub(*v.Started)
}

// isStep reports whether a vertex is a Dockerfile build step. FROM is not one:
// on a pruned builder it completes without Cached even on a full cache hit.
func isStep(name string) bool {
	loc := stepName.FindStringIndex(name)
	return loc != nil && !strings.HasPrefix(name[loc[1]:], "FROM ")
}

// result lists the steps in the order BuildKit first reported them. A step
// this session never saw start nor come from the cache, before a cached step
// of the same stage, came from the cache too: a stage's steps are a chain, and
// the cached step's key holds theirs. BuildKit leaves such steps unreported
// when another build on the same daemon shares their vertices
// (moby/buildkit#4330).
func (t *tally) result() []Step {
	lastCached := map[string]int{} // by stage: the highest cached step number
	for _, name := range t.order {
		if stage, n, ok := stepPosition(name); ok && t.steps[name].Cached {
			lastCached[stage] = max(lastCached[stage], n)
		}
	}
	out := make([]Step, 0, len(t.order))
	for _, name := range t.order {
		s := *t.steps[name]
		if stage, n, ok := stepPosition(name); ok && !s.Cached && !t.started[name] && s.Error == "" && n < lastCached[stage] {
			s.Cached = true
		}
		out = append(out, s)
	}
	return out
}

// stepPosition is a step's stage ("stage-0", "linux/amd64 builder", "" for a
// one-stage build) and its number in it.
func stepPosition(name string) (stage string, n int, ok bool) {
	m := stepName.FindStringSubmatch(name)
	if m == nil {
		return "", 0, false
	}
	n, err := strconv.Atoi(m[2])
	return strings.TrimSpace(m[1]), n, err == nil
}

// Slowest returns up to n steps, longest first.
func Slowest(steps []Step, n int) []Step {
	s := append([]Step(nil), steps...)
	sort.SliceStable(s, func(i, j int) bool { return s[i].Duration > s[j].Duration })
	if len(s) > n {
		s = s[:n]
	}
	return s
}

// StepsAnnotation is the cache manifest annotation holding how long each step
// of the build that wrote the cache took when it last ran (EncodeTimes), so
// that a later build served by the cache can tell the time it saved.
const StepsAnnotation = "com.github.ecr-build-cache.steps"

// maxTimes bounds StepsAnnotation: the slowest steps only, about 2 KB.
const maxTimes = 100

// StepKey names a step in StepsAnnotation: a short digest of its name. Not the
// vertex digest, which changes with every session's build context; the name
// ("[stage n/m] RUN ...") is the Dockerfile's, and a digest of it keeps the
// Dockerfile's text out of the annotation.
func StepKey(name string) string {
	return digest.FromString(name).Encoded()[:16]
}

// EncodeTimes writes step times (by StepKey) as "key=seconds,...", the slowest
// maxTimes first, to a tenth of a second; steps under that are left out.
func EncodeTimes(times map[string]time.Duration) string {
	keys := make([]string, 0, len(times))
	for k, d := range times {
		if d >= 100*time.Millisecond {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if times[keys[i]] != times[keys[j]] {
			return times[keys[i]] > times[keys[j]]
		}
		return keys[i] < keys[j]
	})
	if len(keys) > maxTimes {
		keys = keys[:maxTimes]
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.FormatFloat(times[k].Seconds(), 'f', 1, 64)
	}
	return strings.Join(parts, ",")
}

// DecodeTimes reads EncodeTimes' text, skipping what it cannot read: the
// annotation is in a registry anyone with push access may write.
func DecodeTimes(s string) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		sec, err := strconv.ParseFloat(v, 64)
		if !ok || k == "" || err != nil || !(sec >= 0 && sec <= 24*3600) || len(out) >= maxTimes {
			continue
		}
		out[k] = time.Duration(sec * float64(time.Second)).Round(100 * time.Millisecond)
	}
	return out
}

// stillRunningEvery is the longest a running image or cache export goes
// without a line in the log: a large upload is otherwise silent for minutes.
var stillRunningEvery = 30 * time.Second

// exportWatch follows the running image and cache exports of a solve, with the
// bytes each has sent, to say they are still running.
type exportWatch struct {
	running map[digest.Digest]*watched
}

type watched struct {
	name           string
	started, shown time.Time
	sent           map[string]int64 // bytes per progress item (a layer)
}

func newExportWatch() *exportWatch { return &exportWatch{running: map[digest.Digest]*watched{}} }

func (w *exportWatch) add(st *client.SolveStatus, now time.Time) {
	for _, v := range st.Vertexes {
		switch {
		case !strings.HasPrefix(v.Name, "exporting to image") && !strings.HasPrefix(v.Name, "exporting cache"):
		case v.Completed != nil:
			delete(w.running, v.Digest)
		case v.Started != nil && w.running[v.Digest] == nil:
			w.running[v.Digest] = &watched{name: v.Name, started: now, shown: now, sent: map[string]int64{}}
		}
	}
	for _, vs := range st.Statuses {
		if r := w.running[vs.Vertex]; r != nil && vs.Total > 0 {
			r.sent[vs.ID] = vs.Current
		}
	}
}

// still is a log line on each export that has run stillRunningEvery without
// one (the ticker calls it a few times as often), nil when none is due.
func (w *exportWatch) still(now time.Time) *client.SolveStatus {
	var st *client.SolveStatus
	for _, d := range slices.Sorted(maps.Keys(w.running)) {
		r := w.running[d]
		if now.Sub(r.shown) < stillRunningEvery*2/3 {
			continue
		}
		r.shown = now
		var sent int64
		for _, n := range r.sent {
			sent += n
		}
		line := fmt.Sprintf("still %s after %s: %s sent so far\n", r.name, now.Sub(r.started).Round(time.Second), units.BytesSize(float64(sent)))
		if st == nil {
			st = &client.SolveStatus{}
		}
		st.Logs = append(st.Logs, &client.VertexLog{Vertex: d, Stream: 1, Data: []byte(line), Timestamp: now})
	}
	return st
}
