package run

import (
	"context"
	"slices"

	"github.com/ecr-build-cache/ecr-build-cache/internal/ghout"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
)

// exportKind is what the export phase does with the run's cache tag.
type exportKind int

const (
	exportNone  exportKind = iota // the plan exports nothing
	exportKeep                    // every step came from the export tag itself: it stays as it is
	exportTag                     // every step came from another cache: tag the export ref from it
	exportSolve                   // write the cache with a BuildKit export of its own
	exportDone                    // the build's own solve exported the cache
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
// is no longer imported by then, so it is never kept. A build whose own solve
// exported the cache needs nothing more.
func decideExport(plan cachePlan, b built) exportDecision {
	switch {
	case plan.Export == "":
		return exportDecision{kind: exportNone}
	case b.res.Export != nil:
		return exportDecision{kind: exportDone}
	}
	res := b.res
	if len(res.Steps) == 0 || res.CachedSteps() != len(res.Steps) {
		return exportDecision{kind: exportSolve}
	}
	i := soleCache(plan, b.req.CacheImports)
	switch {
	case i < 0:
		return exportDecision{kind: exportSolve}
	case plan.probed[i].Ref == plan.Export:
		return exportDecision{kind: exportKeep, from: plan.probed[i]}
	}
	return exportDecision{kind: exportTag, from: plan.probed[i]}
}

// soleCache is the index in plan.probed of the one cache in imports, when
// there is one and the registry has every blob of it; -1 otherwise.
func soleCache(plan cachePlan, imports []string) int {
	if len(imports) != 1 {
		return -1
	}
	return slices.IndexFunc(plan.probed, func(p registry.Ref) bool {
		return p.Ref == imports[0] && p.Kind == registry.Cache && p.Complete
	})
}

// exported is the export phase's outcome.
type exported struct {
	decision exportDecision
	// note says why the export was skipped or replaced by a tag, for the summary.
	note string
	// fallback is set when the cache was exported by a solve of its own.
	fallback bool
	solve.Export
}

// export carries out decideExport. Only the run's end (ctx) is an error: a
// failed export is a warning, never a failed build.
func (r *runner) export(ctx context.Context, plan cachePlan, b built) (exported, error) {
	d := decideExport(plan, b)
	out := exported{decision: d}
	switch d.kind {
	case exportNone:
		return out, nil
	case exportDone:
		out.Export = *b.res.Export
		r.settleExport(ctx, plan, b, out)
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
	out.fallback = true
	r.a.Group("Export cache to " + plan.Export)
	var err error
	req := b.req
	req.CacheExport = plan.Export // the build's solve may have run without it
	out.Export, err = commandsStopped(r, func() (solve.Export, error) { return solve.ExportCache(ctx, r.solver, req, r.out) })
	r.a.EndGroup()
	if err != nil {
		return out, err
	}
	r.settleExport(ctx, plan, b, out)
	return out, nil
}

// settleExport warns of a failed export, and marks a written cache with the inputs
// it was built from and its steps' times (a failure to mark it costs the next
// build's guess and its "cache saved" figure only).
func (r *runner) settleExport(ctx context.Context, plan cachePlan, b built, out exported) {
	if out.Err != nil {
		r.a.Warningf("cache not saved to %s (the image is fine): %s", plan.Export, out.Err)
		return
	}
	set := map[string]string{}
	if plan.fingerprint != "" {
		set[registry.InputsAnnotation] = plan.fingerprint
	}
	if times := stepTimes(plan, b); times != "" {
		set[solve.StepsAnnotation] = times
	}
	if len(set) == 0 {
		return
	}
	if _, err := r.reg.Annotate(ctx, plan.Export, set); err != nil {
		r.a.Infof("could not mark %s with the build's inputs and step times (%s): the next build cannot expect its steps cached, and exports in its one solve", plan.Export, ghout.Line(err.Error()))
	}
}

// outcome names what happened to the cache, as the cache-export output says.
func (e exported) outcome() string {
	switch {
	case e.decision.kind == exportNone:
		return "none"
	case e.Err != nil && e.Err.Kind == solve.ExportTimedOut:
		return "timed-out"
	case e.Err != nil:
		return "failed"
	case e.decision.kind == exportKeep:
		return "kept"
	case e.decision.kind == exportTag:
		return "tagged"
	}
	return "exported"
}
