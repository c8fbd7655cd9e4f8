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

	"github.com/ecr-build-cache/ecr-build-cache/internal/ghout"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
)

// report sets the step outputs and writes the job summary.
func (r *runner) report(ctx context.Context, plan cachePlan, b built, exp exported) error {
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
	outputs := []struct{ k, v string }{
		{"digest", digest},
		{"imageid", res.ImageID},
		{"image", b.pushedRef()},
		{"platform", r.platform},
		{"pushed", strconv.FormatBool(b.req.Push)},
		{"metadata", meta},
		{"cache-ref", plan.Export},
		{"cache-from", strings.Join(b.req.CacheImports, "\n")},
		{"cache-hit-ref", hitRef},
		{"cached-steps", strconv.Itoa(cached)},
		{"total-steps", strconv.Itoa(len(res.Steps))},
		{"cache-export", exp.outcome()},
		{"fallbacks", strings.Join(b.allFallbacks(exp), ",")},
	}
	for _, out := range outputs {
		if err := ghout.SetOutput(r.a, out.k, out.v); err != nil {
			return err
		}
	}
	r.a.Infof("%d/%d steps cached; build took %s", cached, len(res.Steps), res.Duration.Round(10*time.Millisecond))
	if r.a.Getenv("GITHUB_STEP_SUMMARY") != "" {
		r.a.AddStepSummary(summary(r.cfg.Dockerfile, r.platform, plan, b, exp, hitRef))
	}
	return nil
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

func summary(dockerfile, platform string, plan cachePlan, b built, exp exported, hitRef string) string {
	req, res := b.req, b.res
	var sb strings.Builder
	fmt.Fprintf(&sb, "### ecr-build-cache: %s\n\n", ghout.Code(dockerfile))
	fmt.Fprintf(&sb, "| | |\n|---|---|\n")
	if req.Push {
		refs := req.Tags
		if b.byDigest() {
			refs = []string{b.pushedRef()}
		}
		tags := make([]string, len(refs))
		for i, t := range refs {
			tags[i] = ghout.Code(t)
		}
		fmt.Fprintf(&sb, "| Image | %s |\n", strings.Join(tags, ", "))
		fmt.Fprintf(&sb, "| Digest | %s |\n", ghout.Code(res.Digest))
	} else {
		fmt.Fprintf(&sb, "| Image | not pushed |\n")
	}
	if platform != "" {
		fmt.Fprintf(&sb, "| Platform | %s |\n", ghout.Code(platform))
	}
	fmt.Fprintf(&sb, "| Cached steps | %d/%d |\n", res.CachedSteps(), len(res.Steps))
	fmt.Fprintf(&sb, "| Build time | %s |\n", res.Duration.Round(10*time.Millisecond))
	for _, p := range plan.probed {
		state := probeState(p, slices.Contains(req.CacheImports, p.Ref), p.Ref == hitRef)
		if slices.Contains(b.damaged, p.Ref) {
			state = "damaged: the build failed with it and succeeded without it"
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
	if fb := b.allFallbacks(exp); len(fb) > 0 {
		fmt.Fprintf(&sb, "| Fallbacks | %s |\n", ghout.Cell(strings.Join(fb, ", ")))
	}
	if slow := solve.Slowest(res.Steps, 10); len(slow) > 0 {
		fmt.Fprintf(&sb, "\n| Step | Cache | Seconds |\n|---|---|---|\n")
		for _, s := range slow {
			state := "run"
			if s.Cached {
				state = "cached"
			}
			fmt.Fprintf(&sb, "| %s | %s | %.2f |\n", ghout.Code(s.Name), state, s.Duration.Seconds())
		}
	}
	return sb.String()
}
