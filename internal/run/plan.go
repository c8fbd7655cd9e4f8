package run

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
)

// cachePlan is the cache references of this run, with what the registry said
// about each import candidate.
type cachePlan struct {
	cacheref.Plan
	probed  []registry.Ref
	imports []string // the probed refs BuildKit imports, priority order
	push    bool     // whether the image is pushed
	policy  cacheref.Decision
	// fingerprint is solve.Fingerprint of the build's request, asked once
	// when the run exports a cache or imports a merged pull request's:
	// "" with fingerprintErr when it has none.
	fingerprint    string
	fingerprintErr error
}

// plan derives the cache refs for the target and probes them.
func (r *runner) plan(ctx context.Context, tgt target, policy cacheref.Decision) (cachePlan, error) {
	p := cachePlan{policy: policy}
	if tgt.offline() {
		p.Plan, _ = policy.Plan("") // the offline plan cannot fail
	} else {
		var err error
		p.Plan, err = policy.Plan(tgt.host + "/" + r.cache.CacheRepository)
		if err != nil {
			return p, fmt.Errorf("derive cache references: %w", err)
		}
		if words := policy.PushWords(); words != "" && r.image.Push {
			r.a.Noticef("%s", words)
		}
		if err := tgt.checkCacheRepository(ctx, r.a, r.cache.CacheRepository, p.Plan); err != nil {
			return p, err
		}
	}
	p.push = r.image.Push && policy.Push && !tgt.offline()
	if p.Export == "" {
		r.a.Infof("cache export: none (%s)", p.ExportReason)
	} else {
		r.a.Infof("cache export: %s", p.Export)
	}

	if p.Export != "" || len(p.Merged) > 0 {
		p.fingerprint, p.fingerprintErr = solve.Fingerprint(ctx, r.request(policy))
	}
	p.probed = r.probe(ctx, p)
	p.imports = importable(p.probed)
	for _, pr := range p.probed {
		state := probeState(pr, slices.Contains(p.imports, pr.Ref), false)
		switch {
		case pr.Err != nil:
			r.a.Warningf("cache ref %s: %s: %v", pr.Ref, state, pr.Err)
		case pr.Kind == registry.NotCache || pr.Kind == registry.LegacyCache || len(pr.Missing) > 0:
			r.a.Warningf("cache ref %s: %s", pr.Ref, state)
		default:
			r.a.Infof("cache import: %s (%s)", pr.Ref, state)
		}
	}
	if len(p.probed) > 0 && len(p.imports) == 0 {
		r.a.Warningf("no cache found (looked for %s): this build runs cold", strings.Join(p.Imports, ", "))
	}
	return p, r.checkRegistry(&p)
}

// preferMerged puts first the cache of a pull request this push merged when
// it was written from exactly this build's inputs: the pull request's build
// ran on refs/pull/N/merge, the tree the merge produced, so that cache holds
// every step, where the branch's own lacks the pull request's changes. Any
// other merged cache stays after the branch's own (one cache is imported).
func (r *runner) preferMerged(p cachePlan, probed []registry.Ref) []registry.Ref {
	if p.fingerprint == "" {
		return probed
	}
	for i, pr := range probed {
		if _, merged := p.Merged[pr.Ref]; merged && pr.Kind == registry.Cache && pr.Annotations[registry.InputsAnnotation] == p.fingerprint {
			r.a.Infof("cache import: %s was written from this build's inputs by the pull request this commit merged: it comes first", pr.Ref)
			return append([]registry.Ref{pr}, slices.Delete(slices.Clone(probed), i, i+1)...)
		}
	}
	return probed
}

// probe asks the registry about every import candidate, puts first a merged
// pull request's cache written from this build's inputs, then checks the
// blobs of the cache importable picks: one that lacks some is passed over,
// and the next candidate is checked.
func (r *runner) probe(ctx context.Context, p cachePlan) []registry.Ref {
	out := r.reg.Probe(ctx, p.Imports)
	if len(p.Merged) > 0 {
		out = r.preferMerged(p, out)
	}
	for {
		imports := importable(out)
		if len(imports) == 0 {
			return out
		}
		i := slices.IndexFunc(out, func(p registry.Ref) bool { return p.Ref == imports[len(imports)-1] })
		if out[i].Kind != registry.Cache || out[i].Complete || out[i].Err != nil {
			return out
		}
		r.reg.CheckBlobs(ctx, &out[i])
		if len(out[i].Missing) == 0 {
			return out
		}
	}
}

// importable picks what to import: the highest-priority cache that exists and
// lacks no blob, after any higher-priority ref that could not be checked but
// whose host answers. Only one known cache, because BuildKit picks among
// several imported caches unpredictably and may follow the fallback's records
// past the steps they share, missing the rest of the branch's own cache
// (moby/buildkit#6418).
func importable(probed []registry.Ref) []string {
	var out []string
	for _, p := range probed {
		switch {
		case len(p.Missing) > 0:
		case p.Kind == registry.Cache || p.Kind == registry.LegacyCache:
			return append(out, p.Ref)
		case p.Err != nil && !p.Unreachable:
			out = append(out, p.Ref)
		}
	}
	return out
}

// checkRegistry stops a run whose registry did not answer a single probe, before
// it builds: BuildKit has no response timeout, and would wait forever to push
// the image or the cache to a host that accepts connections and never answers.
// Without an image to push, the build goes on with no cache export.
func (r *runner) checkRegistry(p *cachePlan) error {
	var asked, stuck int
	var last error
	for _, pr := range p.probed {
		if r.host == "" || !strings.HasPrefix(pr.Ref, r.host+"/") {
			continue
		}
		asked++
		if pr.Unreachable {
			stuck, last = stuck+1, pr.Err
		}
	}
	switch {
	case asked == 0 || stuck < asked:
		return nil
	case p.push:
		return fmt.Errorf("registry %s did not answer within %s, so the image cannot be pushed; check the registry input and the registry's health: %w",
			r.host, registry.ProbeTimeout, last)
	case p.Export != "":
		r.a.Warningf("registry %s did not answer within %s: the cache is not exported to %s", r.host, registry.ProbeTimeout, p.Export)
		p.Export, p.ExportReason = "", fmt.Sprintf("registry %s did not answer", r.host)
	}
	return nil
}

// servedBy returns the ref among imported (probed refs BuildKit imported) that
// holds most of built's layers, preferring the higher-priority ref on a tie; ""
// when none holds any. Only imported refs: an image pushed to a cache tag holds
// the same layers but served nothing.
func servedBy(imported []registry.Ref, built map[string]bool) string {
	best, bestN := "", 0
	for _, p := range imported {
		n := 0
		for l := range built {
			if p.Layers[l] {
				n++
			}
		}
		if n > bestN {
			best, bestN = p.Ref, n
		}
	}
	return best
}

// probeState describes a probed ref for the log and the job summary, in one
// wording.
func probeState(p registry.Ref, imported, served bool) string {
	switch {
	case served:
		return "imported, served the hits"
	case imported && p.Err != nil:
		return "could not be checked, imported anyway"
	case imported:
		return "imported"
	case len(p.Missing) > 0:
		return fmt.Sprintf("damaged: the registry lacks %d of its blobs (%s), not imported", len(p.Missing), strings.Join(p.Missing, ", "))
	case p.Unreachable:
		return "did not answer in time, not imported"
	case p.Err != nil:
		return "could not be checked"
	case p.Kind == registry.NotCache:
		return "not a BuildKit cache (an image or other artifact holds the tag), not imported"
	case p.Exists():
		return "found, not needed: a higher-priority cache is imported"
	}
	return "not found"
}
