package solve

import (
	"cmp"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/moby/buildkit/client"
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
var stepName = regexp.MustCompile(`^\[[^\]]*?\b\d+/\d+\] `)

// tally folds a stream of SolveStatus updates into per-step results. BuildKit
// reports a vertex several times as it progresses, and while several builds share
// a daemon it may forward a merged vertex of another session under a different
// digest, so steps are keyed by their "[stage n/m] ..." name.
type tally struct {
	steps map[string]*Step
	order []string
	// cacheExportErr is the error of a failed "exporting cache" vertex
	// (non-fatal under ignore-error=true, moby/buildkit#3430).
	cacheExportErr string
	exportStart    time.Time // when the cache export was seen to start
	imageErr       string    // the error of a failed "exporting to image" vertex
	image          imageProgress
	warnings       []Warning
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

// exportTook is how long the cache export has run.
func (t *tally) exportTook() time.Duration {
	if t.exportStart.IsZero() {
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

func newTally() *tally { return &tally{steps: map[string]*Step{}} }

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
			continue
		case strings.HasPrefix(v.Name, "exporting to image"):
			if v.Error != "" {
				t.imageErr = v.Error
			}
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
		if v.Error != "" {
			s.Error = v.Error
		}
		if v.Started != nil && v.Completed != nil {
			s.Duration = v.Completed.Sub(*v.Started)
		}
	}
}

// isStep reports whether a vertex is a Dockerfile build step. FROM is not one:
// on a pruned builder it completes without Cached even on a full cache hit.
func isStep(name string) bool {
	loc := stepName.FindStringIndex(name)
	return loc != nil && !strings.HasPrefix(name[loc[1]:], "FROM ")
}

// result lists the steps in the order BuildKit first reported them.
func (t *tally) result() []Step {
	out := make([]Step, 0, len(t.order))
	for _, name := range t.order {
		out = append(out, *t.steps[name])
	}
	return out
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
