package run

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/build"
	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/config"
	"github.com/ecr-build-cache/ecr-build-cache/internal/probe"
)

// outcome is what a run did, for its outputs and summary.
type outcome struct {
	cfg    *config.Config
	plan   cacheref.Plan
	req    build.Request
	res    *build.Result
	probed []probe.Ref
	hitRef string // the imported cache holding most of the built layers
	// exportNote says why the cache export was skipped or replaced by a tag.
	exportNote string
}

// report sets the step outputs and writes the job summary.
func (o outcome) report(a *githubactions.Action) error {
	plan, req, res := o.plan, o.req, o.res
	meta, err := metadata(res.ExporterResponse)
	if err != nil {
		return err
	}
	image := ""
	if len(req.Tags) > 0 {
		image = req.Tags[0]
	}
	cached := res.CachedSteps()
	outputs := []struct{ k, v string }{
		{"digest", res.Digest},
		{"imageid", res.ImageID},
		{"image", image},
		{"metadata", meta},
		{"cache-ref", plan.Export},
		{"cache-from", strings.Join(req.CacheImports, "\n")},
		{"cache-hit-ref", o.hitRef},
		{"cached-steps", strconv.Itoa(cached)},
		{"total-steps", strconv.Itoa(len(res.Steps))},
	}
	for _, out := range outputs {
		a.SetOutput(out.k, out.v)
	}
	a.Infof("%d/%d steps cached; build took %s", cached, len(res.Steps), res.Duration.Round(10*time.Millisecond))
	if a.Getenv("GITHUB_STEP_SUMMARY") != "" {
		a.AddStepSummary(o.summary())
	}
	return nil
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

func (o outcome) summary() string {
	plan, req, res := o.plan, o.req, o.res
	var b strings.Builder
	fmt.Fprintf(&b, "### ecr-build-cache: `%s`\n\n", o.cfg.Dockerfile)
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	if len(req.Tags) > 0 {
		fmt.Fprintf(&b, "| Image | `%s` |\n", strings.Join(req.Tags, "`, `"))
	}
	if res.Digest != "" {
		fmt.Fprintf(&b, "| Digest | `%s` |\n", res.Digest)
	}
	fmt.Fprintf(&b, "| Cached steps | %d/%d |\n", res.CachedSteps(), len(res.Steps))
	fmt.Fprintf(&b, "| Build time | %s |\n", res.Duration.Round(10*time.Millisecond))
	for _, p := range o.probed {
		state := "not found"
		switch {
		case p.Ref == o.hitRef:
			state = "imported, served the hits"
		case slices.Contains(req.CacheImports, p.Ref):
			state = "imported"
		case p.Exists:
			state = "found, not needed: a higher-priority cache was imported"
		case p.Err != nil:
			state = "could not be checked"
		}
		fmt.Fprintf(&b, "| Cache import | `%s` (%s) |\n", p.Ref, state)
	}
	switch {
	case plan.Export == "":
		fmt.Fprintf(&b, "| Cache export | none: %s |\n", plan.ExportReason)
	case res.CacheExportErr != "":
		fmt.Fprintf(&b, "| Cache export | `%s` **failed** (image is fine) |\n", plan.Export)
	case o.exportNote != "":
		fmt.Fprintf(&b, "| Cache export | `%s` %s |\n", plan.Export, o.exportNote)
	default:
		fmt.Fprintf(&b, "| Cache export | `%s` (%s) |\n", plan.Export, res.CacheExportDuration.Round(10*time.Millisecond))
	}
	if slow := build.Slowest(res.Steps, 10); len(slow) > 0 {
		fmt.Fprintf(&b, "\n| Step | Cache | Seconds |\n|---|---|---|\n")
		for _, s := range slow {
			state := "run"
			if s.Cached {
				state = "cached"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %.2f |\n", strings.ReplaceAll(s.Name, "|", `\|`), state, s.Duration.Seconds())
		}
	}
	return b.String()
}
