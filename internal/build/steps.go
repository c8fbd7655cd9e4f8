package build

import (
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
	warnings       []Warning
}

func newTally() *tally { return &tally{steps: map[string]*Step{}} }

func (t *tally) add(st *client.SolveStatus) {
	for _, w := range st.Warnings {
		t.warnings = append(t.warnings, Warning{Message: string(w.Short), Location: location(w.SourceInfo, w.Range)})
	}
	for _, v := range st.Vertexes {
		if strings.HasPrefix(v.Name, "exporting cache") {
			if v.Error != "" {
				t.cacheExportErr = v.Error
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
