package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
)

// fingerprintRuns is how many times the bench fingerprints each context.
const fingerprintRuns = 3

// fingerprintCost times solve.Fingerprint, what the action computes before its
// solve to decide whether to skip the cache export, on a run's base and
// partial contexts of f, as the action's builds of them request it.
func (b *bench) fingerprintCost(ctx context.Context, f fixture, cx contexts, args map[string]string, res *results) error {
	for _, dir := range []string{cx.base, cx.partial} {
		req := solve.Request{ContextDir: dir, Dockerfile: filepath.Join(dir, "Dockerfile"), BuildArgs: b.buildArgs(job{args: args})}
		for range fingerprintRuns {
			start := time.Now()
			if _, err := solve.Fingerprint(ctx, req); err != nil {
				return fmt.Errorf("fingerprint %s: %w", dir, err)
			}
			res.fingerprints[f.name] = append(res.fingerprints[f.name], time.Since(start))
		}
	}
	return nil
}

// renderFingerprints compares the fingerprint's time with BuildKit receiving
// the same contexts in the action's builds (cold, partial and new branch+change:
// the builds that send them whole to a pruned builder, as every build does).
func (r *results) renderFingerprints(b *strings.Builder, ran []fixture) {
	if len(r.fingerprints) == 0 {
		return
	}
	fmt.Fprintf(b, "== fingerprint: solve.Fingerprint (the action's guess before its solve: git tree plus the content of files git does not hold as committed; "+
		"outside git the filtered context's content) on each run's base and partial contexts, %d times each; context: BuildKit receiving the build context "+
		"in the action's builds of the fixture (every scenario); medians (min-max)\n", fingerprintRuns)
	fmt.Fprintf(b, "%-20s %-24s %-24s %12s\n", "fixture", "fingerprint", "context", "fp / context")
	for _, f := range ran {
		fp := r.fingerprints[f.name]
		if len(fp) == 0 {
			continue
		}
		var v, sends []float64
		for _, d := range fp {
			v = append(v, d.Seconds())
		}
		for _, sc := range f.scenarios {
			for _, s := range r.samples[key{f.name, sc.name, toolAction}] {
				sends = append(sends, contextSend(s))
			}
		}
		fmt.Fprintf(b, "%-20s %-24s %-24s %12s\n", f.name, withSpread(v), withSpread(sends), fmtPct(median(v)/median(sends)))
	}
	b.WriteString("\n")
}

// withSpread shows the median of v with its min-max.
func withSpread(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	return fmtSpread(median(v), slices.Min(v), slices.Max(v))
}
