package run

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/config"
	"github.com/ecr-build-cache/ecr-build-cache/internal/ghout"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
)

// merge is a merge run: it builds nothing (no BuildKit), logs in like a build
// (the target phase), and pushes an OCI image index of the per-platform images
// that push-by-digest builds pushed, under every tag.
func merge(ctx context.Context, a *githubactions.Action, cfg *config.Config, policy cacheref.Decision) error {
	tgt, err := resolveTarget(ctx, a, cfg, policy)
	if err != nil {
		return err
	}
	if tgt.offline() || !policy.Push {
		a.Noticef("%s", policy.MergeWords())
		return ghout.SetOutput(a, "pushed", "false")
	}
	if err := checkImageTags(cfg, tgt); err != nil {
		return err
	}
	// Without the repository input every tag is a full reference, and the
	// cache repository was taken from the first (cache-repository is refused).
	repo := tgt.host + "/" + cmp.Or(cfg.Repository, cfg.CacheRepository)
	sources := cfg.MergeRefs(tgt.host, cmp.Or(cfg.Repository, cfg.CacheRepository))
	if len(cfg.MergePlatforms) > 0 {
		if sources, err = stagedImages(ctx, a, cfg, tgt.client, repo); err != nil {
			return fmt.Errorf("merge-platforms: %w", err)
		}
	}
	req := registry.IndexRequest{
		Repository:  repo,
		Manifests:   sources,
		Tags:        cfg.ImageRefs(tgt.host),
		Annotations: indexAnnotations(cfg.Annotations),
		Platforms:   cfg.MergePlatforms,
	}
	idx, err := tgt.client.PushIndex(ctx, req)
	if err != nil {
		return fmt.Errorf("merge into %s:\n%w", repo, err)
	}
	for _, c := range idx.Copied {
		a.Infof("copied %s into %s", c, repo)
	}
	a.Infof("pushed image index %s (%s) as %s", idx.Descriptor.Digest, strings.Join(idx.Platforms, ", "), strings.Join(req.Tags, ", "))
	return reportMerge(a, req, idx)
}

// stagedImages finds the image of each of merge-platforms that this workflow
// run's push-by-digest steps staged: in this attempt, else the latest earlier
// one (re-running failed jobs re-runs only some of the legs).
func stagedImages(ctx context.Context, a *githubactions.Action, cfg *config.Config, reg *registry.Client, repo string) ([]string, error) {
	run := currentRun(a)
	if run.id == "" {
		return nil, errors.New("finds the images this workflow run staged by GITHUB_RUN_ID, which is not set (not a workflow run?); give merge-digests instead")
	}
	var out []string
	var problems []error
	for _, p := range cfg.MergePlatforms {
		img, err := stagedImage(ctx, reg, repo, cfg, p, run)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		a.Infof("%s: %s", p, img)
		out = append(out, img)
	}
	return out, errors.Join(problems...)
}

func stagedImage(ctx context.Context, reg *registry.Client, repo string, cfg *config.Config, platform string, run workflowRun) (string, error) {
	for attempt := run.attempt; attempt >= 1; attempt-- {
		img, found, err := reg.Staged(ctx, repo+":"+stagingTag(cfg.CacheTagPrefix, cfg.CacheScope, platform, run, attempt))
		if err != nil || found {
			return img, err
		}
	}
	return "", fmt.Errorf("%s: no image staged in %s by run %s (attempts 1 to %d) with cache-scope %q: did its push-by-digest build push, to this repository with this cache-scope?",
		platform, repo, run.id, run.attempt, cfg.CacheScope)
}

// indexAnnotations are the index's annotations from the exporter attributes
// config parsed (a merge takes only annotation-index.KEY).
func indexAnnotations(attrs map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range attrs {
		if key, ok := strings.CutPrefix(k, "annotation-index."); ok {
			out[key] = v
		}
	}
	return out
}

// reportMerge sets a merge's outputs and job summary.
func reportMerge(a *githubactions.Action, req registry.IndexRequest, idx registry.Index) error {
	// Shaped like buildx's --metadata-file for an image push.
	meta, err := json.Marshal(map[string]any{
		"containerimage.digest":     idx.Descriptor.Digest.String(),
		"containerimage.descriptor": idx.Descriptor,
		"image.name":                strings.Join(req.Tags, ","),
	})
	if err != nil {
		return fmt.Errorf("encode metadata output: %w", err)
	}
	err = ghout.SetOutputs(a,
		ghout.Output{Name: "digest", Value: idx.Descriptor.Digest.String()},
		ghout.Output{Name: "image", Value: req.Tags[0]},
		ghout.Output{Name: "registry", Value: registryHost(req.Tags[0])},
		ghout.Output{Name: "pushed", Value: "true"},
		ghout.Output{Name: "metadata", Value: string(meta)},
		ghout.Output{Name: "platform", Value: strings.Join(idx.Platforms, ",")},
	)
	if err != nil {
		return err
	}
	if a.Getenv("GITHUB_STEP_SUMMARY") == "" {
		return nil
	}
	var sb strings.Builder
	ghout.TableHeading(&sb, "merged image index")
	fmt.Fprintf(&sb, "| Image | %s |\n", ghout.Codes(req.Tags))
	fmt.Fprintf(&sb, "| Digest | %s |\n", ghout.Code(idx.Descriptor.Digest.String()))
	fmt.Fprintf(&sb, "| Platforms | %s |\n", ghout.Cell(strings.Join(idx.Platforms, ", ")))
	for _, m := range req.Manifests {
		fmt.Fprintf(&sb, "| From | %s |\n", ghout.Code(m))
	}
	a.AddStepSummary(sb.String())
	return nil
}
