package run

import (
	"context"
	"slices"

	"github.com/ecr-build-cache/ecr-build-cache/internal/build"
	"github.com/ecr-build-cache/ecr-build-cache/internal/ghout"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
)

// exportKind is what the export phase does with the run's cache tag.
type exportKind int

const (
	exportNone  exportKind = iota // the plan exports nothing
	exportKeep                    // every step came from the export tag itself: it stays as it is
	exportTag                     // every step came from another cache: tag the export ref from it
	exportSolve                   // write the cache with a BuildKit export
)

// exportDecision is what to do, and from which cache for exportTag.
type exportDecision struct {
	kind exportKind
	from registry.Ref
}

// decideExport skips an export that would rewrite the cache already in the
// registry: when every step came from the one imported cache, and the registry
// has every blob of it, that cache is kept as it is (same tag) or tagged again
// (a new branch's first build). A cache the build had to do without (b.damaged)
// is no longer imported by then, so it is never kept.
func decideExport(plan cachePlan, b built) exportDecision {
	if plan.Export == "" {
		return exportDecision{kind: exportNone}
	}
	imports, res := b.req.CacheImports, b.res
	if len(res.Steps) == 0 || res.CachedSteps() != len(res.Steps) || len(imports) != 1 {
		return exportDecision{kind: exportSolve}
	}
	i := slices.IndexFunc(plan.probed, func(p registry.Ref) bool {
		return p.Ref == imports[0] && p.Kind == registry.Cache && p.Complete
	})
	switch {
	case i < 0:
		return exportDecision{kind: exportSolve}
	case plan.probed[i].Ref == plan.Export:
		return exportDecision{kind: exportKeep, from: plan.probed[i]}
	}
	return exportDecision{kind: exportTag, from: plan.probed[i]}
}

// exported is the export phase's outcome.
type exported struct {
	decision exportDecision
	// note says why the export was skipped or replaced by a tag, for the summary.
	note string
	build.Export
}

// export carries out decideExport. Only the run's end (ctx) is an error: a
// failed export is a warning, never a failed build.
func (r *runner) export(ctx context.Context, plan cachePlan, b built) (exported, error) {
	d := decideExport(plan, b)
	out := exported{decision: d}
	switch d.kind {
	case exportNone:
		return out, nil
	case exportKeep:
		r.a.Infof("cache export: skipped, every step came from %s, which stays as it is", plan.Export)
		out.note = "unchanged: every step came from it" + r.keepAlive(ctx, plan)
		return out, nil
	case exportTag:
		err := r.reg.Tag(ctx, d.from, plan.Export)
		if err == nil {
			r.a.Infof("cache export: %s tagged from %s, which served every step", plan.Export, d.from.Ref)
			out.note = "tagged from " + ghout.Code(d.from.Ref) + ", which served every step" + r.keepAlive(ctx, plan)
			return out, nil
		}
		r.a.Infof("cache export: could not tag %s from %s (%s); exporting instead", plan.Export, d.from.Ref, ghout.Line(err.Error()))
		out.decision.kind = exportSolve
	}
	r.a.Group("Export cache to " + plan.Export)
	var err error
	out.Export, err = untrusted(r, func() (build.Export, error) { return build.ExportCache(ctx, r.solver, b.req, r.out) })
	r.a.EndGroup()
	if err != nil {
		return out, err
	}
	if out.Err != nil {
		r.a.Warningf("cache not saved to %s (the image is fine): %s", plan.Export, out.Err)
	}
	return out, nil
}
