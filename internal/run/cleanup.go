package run

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/sethvargo/go-githubactions"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/config"
	"github.com/ecr-build-cache/ecr-build-cache/internal/ghout"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
)

// cleaned is what a cleanup run did.
type cleaned struct {
	cleanup    cacheref.Cleanup
	repository string   // host/path; "" when nothing was to be deleted
	deleted    []string // tags
	left       []string // one line per tag left, saying why
}

// cleanup is the run on a deleted branch or a closed pull request: it deletes
// that key's cache tags and builds nothing, so it needs no BuildKit.
func cleanup(ctx context.Context, a *githubactions.Action, cfg *config.Config) error {
	c, err := cacheref.DecideCleanup(cfg.Event, cacheref.CleanupOptions{
		Prefix:        cfg.CacheTagPrefix,
		DefaultBranch: cfg.DefaultBranch,
		Scopes:        append([]string{cfg.CacheScope}, cfg.CleanupScopes...),
		Platforms:     cfg.NormalizedPlatforms(),
	})
	if err != nil {
		return fmt.Errorf("cache cleanup: %w", err)
	}
	res := cleaned{cleanup: c}
	if c.Key.IsZero() {
		a.Noticef("cache cleanup: nothing to delete: %s", c.Reason)
	} else {
		tgt, err := resolveTarget(ctx, a, cfg, cacheref.Decision{})
		if err != nil {
			return err
		}
		res.repository = tgt.host + "/" + cfg.CacheRepository
		if tgt.ecr != nil {
			err = res.deleteECR(ctx, a, tgt, cfg.CacheRepository)
		} else {
			err = res.deleteByDigest(ctx, a, tgt.client)
		}
		if err != nil {
			return err
		}
	}
	if err := ghout.SetOutput(a, "deleted-tags", strings.Join(res.deleted, "\n")); err != nil {
		return err
	}
	if a.Getenv("GITHUB_STEP_SUMMARY") != "" {
		a.AddStepSummary(res.summary())
	}
	return nil
}

// owned lists the tags of tagDigests (tag -> digest) the cleanup may delete.
func (res *cleaned) owned(a *githubactions.Action, tagDigests map[string]string) []string {
	owned := res.cleanup.Owned(slices.Sorted(maps.Keys(tagDigests)))
	if len(owned) == 0 {
		a.Infof("cache cleanup: %s has no cache tags of %s", res.repository, res.cleanup.Key)
	}
	return owned
}

// deleteECR removes the tags with BatchDeleteImage, which untags: an image
// another tag names (a tag copy of another branch's cache) stays for that tag.
// The tags are listed with ListImages, which gives their digests in the same
// call and needs no other permission than the cleanup's own.
func (res *cleaned) deleteECR(ctx context.Context, a *githubactions.Action, tgt target, repository string) error {
	listed, err := tgt.ecr.ListTags(ctx, tgt.account, repository)
	if err != nil {
		return fmt.Errorf("cache cleanup: %w", err)
	}
	digests := make(map[string]string, len(listed))
	for _, l := range listed {
		digests[l.Tag] = l.Digest
	}
	owned := res.owned(a, digests)
	if len(owned) == 0 {
		return nil
	}
	removed, failed, err := tgt.ecr.DeleteTags(ctx, tgt.account, repository, owned)
	res.deleted = removed
	if err != nil {
		return fmt.Errorf("cache cleanup: %w", err)
	}
	for _, t := range removed {
		a.Infof("cache cleanup: deleted %s:%s", res.repository, t)
	}
	_, shared := cacheref.ByDigest(removed, digests)
	for _, s := range shared {
		a.Infof("cache cleanup: the image %s named stays: %s also names it", s.Tag, strings.Join(s.Others, ", "))
	}
	for _, f := range failed {
		switch f.Code {
		case types.ImageFailureCodeImageNotFound: // deleted meanwhile
			a.Infof("cache cleanup: %s was already gone", f.Tag)
		case types.ImageFailureCodeImageReferencedByManifestList:
			res.left = append(res.left, f.Tag+": an image index references its image; it goes with the index")
			a.Noticef("cache cleanup: %s left: an image index in %s references its image (%s)", f.Tag, res.repository, f.Reason)
		default:
			res.left = append(res.left, f.Tag+": "+f.Reason)
			a.Warningf("cache cleanup: %s not deleted: %s (%s)", f.Tag, f.Reason, f.Code)
		}
	}
	return nil
}

// deleteByDigest deletes through the registry API, which deletes manifests by
// digest only, with every tag naming them: a tag whose manifest another tag
// also names (a new branch's cache is often a tag copy of its fallback's) is
// left, or deleting it would delete the other's cache too.
func (res *cleaned) deleteByDigest(ctx context.Context, a *githubactions.Action, reg *registry.Client) error {
	digests, err := reg.TagDigests(ctx, res.repository)
	if err != nil {
		return fmt.Errorf("cache cleanup: %w", err)
	}
	owned := res.owned(a, digests)
	deletes, shared := cacheref.ByDigest(owned, digests)
	for _, s := range shared {
		res.left = append(res.left, fmt.Sprintf("%s: its manifest is also tagged %s", s.Tag, strings.Join(s.Others, ", ")))
		a.Noticef("cache cleanup: %s left: its manifest is also tagged %s (a tag copy), and this registry deletes by digest only, which would delete those tags too",
			s.Tag, strings.Join(s.Others, ", "))
	}
	for i, d := range deletes {
		err := reg.DeleteManifest(ctx, res.repository, d.Digest)
		switch {
		case errors.Is(err, registry.ErrDeleteUnsupported):
			var tags []string
			for _, rest := range deletes[i:] {
				tags = append(tags, rest.Tags...)
			}
			res.left = append(res.left, strings.Join(tags, ", ")+": the registry does not allow deleting manifests")
			a.Noticef("cache cleanup: %s does not allow deleting manifests, so %s stay: enable deletes (distribution: storage.delete.enabled) or expire them with the registry's own retention (%v)",
				res.repository, strings.Join(tags, ", "), err)
			return nil
		case err != nil:
			res.left = append(res.left, strings.Join(d.Tags, ", ")+": "+err.Error())
			a.Warningf("cache cleanup: %s not deleted: %v", strings.Join(d.Tags, ", "), err)
		default:
			res.deleted = append(res.deleted, d.Tags...)
			for _, t := range d.Tags {
				a.Infof("cache cleanup: deleted %s:%s (manifest %s)", res.repository, t, d.Digest)
			}
		}
	}
	return nil
}

func (res *cleaned) summary() string {
	var sb strings.Builder
	c := res.cleanup
	if c.Key.IsZero() {
		fmt.Fprintf(&sb, "### ecr-build-cache: cache cleanup\n\nNothing deleted: %s\n", ghout.Cell(c.Reason))
		return sb.String()
	}
	ghout.TableHeading(&sb, "cache cleanup for "+ghout.Cell(c.Key.String()))
	fmt.Fprintf(&sb, "| Repository | %s |\n", ghout.Code(res.repository))
	if len(res.deleted) == 0 {
		fmt.Fprintf(&sb, "| Deleted | none |\n")
	}
	for _, t := range res.deleted {
		fmt.Fprintf(&sb, "| Deleted | %s |\n", ghout.Code(t))
	}
	for _, l := range res.left {
		fmt.Fprintf(&sb, "| Left | %s |\n", ghout.Cell(l))
	}
	return sb.String()
}
