package run

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cachemount"
	"github.com/ecr-build-cache/ecr-build-cache/internal/ghout"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
)

// report sets the step outputs and writes the job summary. mounts is the
// cache mounts' session, nil when none is saved.
func (r *runner) report(ctx context.Context, plan cachePlan, b built, exp exported, mounts *cachemount.Session) error {
	res := b.res
	meta, err := metadata(res.ExporterResponse)
	if err != nil {
		return err
	}
	hitRef := r.servedBy(ctx, plan, b, exp)
	digest := ""
	if b.req.Push {
		digest = res.Digest
	}
	cached := res.CachedSteps()
	rep := cacheReport{saved: savedTime(plan, b), cold: r.coldReason(plan, b), mounts: r.mountsOutcome(mounts)}
	err = ghout.SetOutputs(r.a,
		ghout.Output{Name: "digest", Value: digest},
		ghout.Output{Name: "imageid", Value: res.ImageID},
		ghout.Output{Name: "image", Value: b.pushedRef()},
		ghout.Output{Name: "registry", Value: registryHost(b.pushedRef())},
		ghout.Output{Name: "platform", Value: r.platform},
		ghout.Output{Name: "pushed", Value: strconv.FormatBool(b.req.Push)},
		ghout.Output{Name: "metadata", Value: meta},
		ghout.Output{Name: "cache-ref", Value: plan.Export},
		ghout.Output{Name: "cache-from", Value: strings.Join(b.req.CacheImports, "\n")},
		ghout.Output{Name: "cache-hit-ref", Value: hitRef},
		ghout.Output{Name: "cached-steps", Value: strconv.Itoa(cached)},
		ghout.Output{Name: "total-steps", Value: strconv.Itoa(len(res.Steps))},
		ghout.Output{Name: "cache-export", Value: exp.outcome()},
		ghout.Output{Name: "cache-saved-seconds", Value: strconv.Itoa(int(rep.saved.total.Round(time.Second).Seconds()))},
		ghout.Output{Name: "cache-mounts", Value: rep.mounts.output},
		ghout.Output{Name: "fallbacks", Value: strings.Join(b.allFallbacks(exp), ",")},
	)
	if err != nil {
		return err
	}
	r.a.Infof("%d/%d steps cached%s; build took %s", cached, len(res.Steps), rep.saved.text(", cache saved about "), res.Duration.Round(10*time.Millisecond))
	if rep.cold != "" {
		r.a.Infof("cold build: %s", rep.cold)
	}
	if r.a.Getenv("GITHUB_STEP_SUMMARY") != "" {
		r.a.AddStepSummary(summary(r.inputs.Dockerfile, r.platform, plan, b, exp, hitRef, rep))
	}
	return nil
}

// registryHost is the registry host of an image reference; "" for none.
func registryHost(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ""
	}
	return reference.Domain(named)
}

// cacheReport is what the cache did for the build, for the outputs and the summary.
type cacheReport struct {
	saved  saved
	cold   string // why no step came from the cache; "" when one did
	mounts mountsState
}

// saved is the time the cached steps took when they last ran, as the imported
// caches recorded it (solve.StepsAnnotation).
type saved struct {
	total time.Duration
	// lastRun is each cached step's last run time by name; known of them.
	lastRun   map[string]time.Duration
	known, of int
}

// text is "<prefix>N s", or "" when no cached step has a recorded time.
func (s saved) text(prefix string) string {
	if s.known == 0 {
		return ""
	}
	t := fmt.Sprintf("%s%d s", prefix, int(s.total.Round(time.Second).Seconds()))
	if s.known < s.of {
		t += fmt.Sprintf(" (%d of %d cached steps have a recorded time)", s.known, s.of)
	}
	return t
}

// lastRunTimes are the step times the imports recorded, by solve.StepKey: the
// highest-priority import's first. recorded tells whether any import has a
// record: a step it leaves out took under a tenth of a second (or was among
// the fastest of a long Dockerfile).
func lastRunTimes(plan cachePlan, imports []string) (times map[string]time.Duration, recorded bool) {
	times = map[string]time.Duration{}
	for _, ref := range imports {
		i := slices.IndexFunc(plan.probed, func(p registry.Ref) bool { return p.Ref == ref })
		if i < 0 {
			continue
		}
		text, ok := plan.probed[i].Annotations[solve.StepsAnnotation]
		recorded = recorded || ok
		for k, d := range solve.DecodeTimes(text) {
			if _, ok := times[k]; !ok {
				times[k] = d
			}
		}
	}
	return times, recorded
}

// savedTime sums the last run times of the steps that came from the cache.
func savedTime(plan cachePlan, b built) saved {
	last, recorded := lastRunTimes(plan, b.req.CacheImports)
	s := saved{lastRun: map[string]time.Duration{}}
	for _, st := range b.res.Steps {
		if !st.Cached {
			continue
		}
		s.of++
		if d, ok := last[solve.StepKey(st.Name)]; ok || recorded {
			s.known++
			s.total += d
			s.lastRun[st.Name] = d
		}
	}
	return s
}

// stepTimes is the StepsAnnotation of the cache this build writes: each step's
// time when it last ran, this build's for those that ran and the imports'
// record for those that came from the cache, so a cache rebuilt from itself
// still knows what its steps cost.
func stepTimes(plan cachePlan, b built) string {
	last, _ := lastRunTimes(plan, b.req.CacheImports)
	times := map[string]time.Duration{}
	for _, st := range b.res.Steps {
		k := solve.StepKey(st.Name)
		if d, ok := last[k]; st.Cached && ok {
			times[k] = d
		} else if !st.Cached {
			times[k] = st.Duration
		}
	}
	return solve.EncodeTimes(times)
}

// coldReason says why no step came from the cache; "" when one did, or the
// build had no steps.
func (r *runner) coldReason(plan cachePlan, b built) string {
	res := b.res
	exists := slices.ContainsFunc(plan.probed, registry.Ref.Exists)
	switch {
	case len(res.Steps) == 0 || res.CachedSteps() > 0:
		return ""
	case r.inputs.NoCache:
		return "no-cache: true runs every step"
	case len(b.damaged) > 0:
		return "damaged cache: the build failed with " + strings.Join(b.damaged, ", ") + " and ran again without it"
	case r.host == "":
		return plan.policy.Reason + ", without registry credentials (as usual for a fork): no cache is read"
	case len(plan.Imports) == 0:
		return "no cache to read: " + plan.ExportReason
	case !exists:
		return "no cache yet: none of " + strings.Join(plan.Imports, ", ") + " exists (the first build of this branch, its base and the default branch)"
	case len(b.req.CacheImports) == 0:
		return "no usable cache: every cache found was refused (see the cache import rows)"
	}
	return "no step matched the imported cache: the Dockerfile, its build args or the files its first steps copy changed"
}

// mountsState is what became of the cache mounts, as far as the session tells.
type mountsState struct {
	row    string // the summary's words; "" for no row
	output string // the cache-mounts output
}

// mountsOutcome is what became of the cache mounts, as the session's save
// (nil when none is saved) says. The sizes and the artifact seeded from are in
// the log's "cache mounts:" lines.
func (r *runner) mountsOutcome(s *cachemount.Session) mountsState {
	switch {
	case len(r.cache.CacheMounts) == 0:
		return mountsState{}
	case s == nil || s.Outcome() == cachemount.NotSaved:
		return mountsState{"not saved by this run: no mount kept, no registry, a run that writes no cache, or a save that failed or could not be trusted (the log's cache mounts lines say which)", "none"}
	case s.Outcome() == cachemount.AsSeeded:
		return mountsState{"unchanged: every step came from the cache, so the mounts are as seeded", "unchanged"}
	}
	return mountsState{"saved to " + ghout.Code(s.Export()) + " where changed (the log's cache mounts lines give each mount's size)", "saved"}
}

// servedBy names the imported cache holding most of the layers of what this run
// pushed (the image, else the cache it exported); "" when no step was cached.
func (r *runner) servedBy(ctx context.Context, plan cachePlan, b built, exp exported) string {
	var ref string
	switch {
	case len(b.req.CacheImports) == 0 || b.res.CachedSteps() == 0:
		return ""
	case b.req.Push:
		ref = b.pushedRef()
	case (exp.decision.kind == exportSolve || exp.decision.kind == exportDone) && exp.Err == nil:
		ref = plan.Export
	default:
		return ""
	}
	layers, err := r.reg.Layers(ctx, ref)
	if err != nil {
		r.a.Warningf("could not tell which cache served the build: %s", ghout.Line(err.Error()))
		return ""
	}
	var imported []registry.Ref
	for _, p := range plan.probed {
		if slices.Contains(b.req.CacheImports, p.Ref) {
			imported = append(imported, p)
		}
	}
	return servedBy(imported, layers)
}

// metadata renders the exporter response like buildx's --metadata-file: the
// base64 descriptor is decoded into JSON.
func metadata(resp map[string]string) (string, error) {
	m := make(map[string]any, len(resp))
	for k, v := range resp {
		m[k] = v
		if k == "containerimage.descriptor" {
			if raw, err := base64.StdEncoding.DecodeString(v); err == nil && json.Valid(raw) {
				m[k] = json.RawMessage(raw)
			}
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode metadata output: %w", err)
	}
	return string(b), nil
}

// summary is the job summary. Every text from the build (step names, refs)
// is untrusted: it goes through ghout.Code or ghout.Cell.
func summary(dockerfile, platform string, plan cachePlan, b built, exp exported, hitRef string, rep cacheReport) string {
	req, res := b.req, b.res
	var sb strings.Builder
	ghout.TableHeading(&sb, ghout.Code(dockerfile))
	if req.Push {
		refs := req.Tags
		if b.byDigest() {
			refs = []string{b.pushedRef()}
		}
		fmt.Fprintf(&sb, "| Image | %s |\n", ghout.Codes(refs))
		fmt.Fprintf(&sb, "| Digest | %s |\n", ghout.Code(res.Digest))
	} else {
		fmt.Fprintf(&sb, "| Image | not pushed |\n")
	}
	if platform != "" {
		fmt.Fprintf(&sb, "| Platform | %s |\n", ghout.Code(platform))
	}
	fmt.Fprintf(&sb, "| Cached steps | %d/%d%s |\n", res.CachedSteps(), len(res.Steps), rep.saved.text(": cache saved about "))
	if rep.cold != "" {
		fmt.Fprintf(&sb, "| Cold build | %s |\n", ghout.Cell(rep.cold))
	}
	// The solve's time less its image and cache exports, which BuildKit runs
	// after the steps, one after the other.
	steps := res.Duration - res.ImageDuration
	if res.Export != nil {
		steps -= res.Export.Duration
	}
	fmt.Fprintf(&sb, "| Build time | %s |\n", max(steps, 0).Round(10*time.Millisecond))
	switch {
	case req.Push:
		fmt.Fprintf(&sb, "| Push | %s |\n", res.ImageDuration.Round(10*time.Millisecond))
	case res.ImageDuration > 0:
		fmt.Fprintf(&sb, "| Image export | %s |\n", res.ImageDuration.Round(10*time.Millisecond))
	}
	for _, p := range plan.probed {
		state := probeState(p, slices.Contains(req.CacheImports, p.Ref), p.Ref == hitRef)
		if slices.Contains(b.damaged, p.Ref) {
			state = "damaged: the build failed with it and succeeded without it"
		}
		if n, ok := plan.Merged[p.Ref]; ok {
			state += fmt.Sprintf("; pr-%d, merged by this commit", n)
		}
		fmt.Fprintf(&sb, "| Cache import | %s (%s) |\n", ghout.Code(p.Ref), state)
	}
	switch {
	case plan.Export == "":
		fmt.Fprintf(&sb, "| Cache export | none: %s |\n", ghout.Cell(plan.ExportReason))
	case exp.Err != nil:
		fmt.Fprintf(&sb, "| Cache export | %s **failed** (image is fine): %s |\n", ghout.Code(plan.Export), ghout.Cell(exp.Err.Msg))
	case exp.note != "":
		fmt.Fprintf(&sb, "| Cache export | %s %s |\n", ghout.Code(plan.Export), exp.note)
	default:
		fmt.Fprintf(&sb, "| Cache export | %s (%s) |\n", ghout.Code(plan.Export), exp.Duration.Round(10*time.Millisecond))
	}
	if rep.mounts.row != "" {
		fmt.Fprintf(&sb, "| Cache mounts | %s |\n", rep.mounts.row)
	}
	if fb := b.allFallbacks(exp); len(fb) > 0 {
		fmt.Fprintf(&sb, "| Fallbacks | %s |\n", ghout.Cell(strings.Join(fb, ", ")))
	}
	stepTables(&sb, res.Steps, rep.saved)
	return sb.String()
}

// maxStepRows bounds each step table of the summary.
const maxStepRows = 20

// stepTables lists the steps that ran, slowest first, and then, collapsed,
// those that came from the cache with the time each took when it last ran.
func stepTables(sb *strings.Builder, steps []solve.Step, sv saved) {
	var ran, cached []solve.Step
	for _, s := range steps {
		if s.Cached {
			s.Duration = sv.lastRun[s.Name] // 0 when unknown
			cached = append(cached, s)
		} else {
			ran = append(ran, s)
		}
	}
	if len(ran) > 0 {
		fmt.Fprintf(sb, "\n| Step that ran | Seconds |\n|---|---|\n")
		for _, s := range solve.Slowest(ran, maxStepRows) {
			fmt.Fprintf(sb, "| %s | %.2f |\n", ghout.Code(s.Name), s.Duration.Seconds())
		}
		if len(ran) > maxStepRows {
			fmt.Fprintf(sb, "| %d more | |\n", len(ran)-maxStepRows)
		}
	}
	if len(cached) == 0 {
		return
	}
	plural := "s"
	if len(cached) == 1 {
		plural = ""
	}
	fmt.Fprintf(sb, "\n<details><summary>%d cached step%s%s</summary>\n\n", len(cached), plural, sv.text(": saved about "))
	fmt.Fprintf(sb, "| Cached step | Seconds when it last ran |\n|---|---|\n")
	for _, s := range solve.Slowest(cached, maxStepRows) {
		secs := "unknown"
		if d, ok := sv.lastRun[s.Name]; ok && d < 100*time.Millisecond {
			secs = "under 0.1"
		} else if ok {
			secs = fmt.Sprintf("%.2f", d.Seconds())
		}
		fmt.Fprintf(sb, "| %s | %s |\n", ghout.Code(s.Name), secs)
	}
	if len(cached) > maxStepRows {
		fmt.Fprintf(sb, "| %d more | |\n", len(cached)-maxStepRows)
	}
	fmt.Fprintf(sb, "\n</details>\n")
}
