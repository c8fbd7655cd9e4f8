package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// IndexTimeout bounds a whole PushIndex (each request is also bounded by the
// transport's timeouts): copying an image from another repository is one
// mount per blob, but a registry that refuses mounts makes it a download and
// upload of every layer.
const IndexTimeout = 10 * time.Minute

// IndexRequest is an image index to assemble from manifests already pushed.
type IndexRequest struct {
	Repository string // full repository name (host/path) the index is pushed to
	// Manifests are full references by digest (host/path@sha256:...), in index
	// order. An index among them (an image with attestations) contributes its
	// entries. Those in another repository of the same registry are copied in.
	Manifests   []string
	Tags        []string          // full tag references in Repository
	Annotations map[string]string // of the index
	// Platforms, when set, are the platforms the images must be, no more, no
	// fewer (normalized, e.g. linux/arm64).
	Platforms []string
}

// Index is what PushIndex pushed.
type Index struct {
	Descriptor v1.Descriptor
	Platforms  []string // of the images, in index order; attestation entries left out
	Copied     []string // the manifests copied in from another repository
}

// source is one fetched entry of an IndexRequest.
type source struct {
	ref  name.Digest
	desc *remote.Descriptor
	adds []mutate.IndexAddendum
}

// PushIndex builds an OCI image index of req.Manifests and pushes it under
// every tag. It refuses, naming all of them at once: manifests that are not in
// the registry, two images of one platform, and manifests of another registry
// or that cannot be copied in from another repository.
func (c *Client) PushIndex(ctx context.Context, req IndexRequest) (Index, error) {
	ctx, cancel := context.WithTimeout(ctx, IndexTimeout)
	defer cancel()
	repo, err := c.repository(req.Repository)
	if err != nil {
		return Index{}, err
	}
	if len(req.Manifests) == 0 || len(req.Tags) == 0 {
		return Index{}, fmt.Errorf("push an image index to %s: no manifests or no tags", req.Repository)
	}
	var out Index
	var problems []error
	var tags []name.Tag
	for _, t := range req.Tags {
		tag, err := c.parseTag(t, repo)
		if err != nil {
			problems = append(problems, err)
		}
		tags = append(tags, tag)
	}
	var sources []source
	seen := map[string]string{} // platform -> the manifest that has it
	for _, m := range req.Manifests {
		s, err := c.fetchSource(ctx, repo, m)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		for _, a := range s.adds {
			if isAttestation(a.Descriptor) {
				continue
			}
			pl := platformString(a.Platform)
			if prev, dup := seen[pl]; dup {
				problems = append(problems, fmt.Errorf("%s and %s are both %s: an index holds one image per platform; drop one", prev, m, pl))
				continue
			}
			seen[pl] = m
			out.Platforms = append(out.Platforms, pl)
		}
		sources = append(sources, s)
	}
	if len(req.Platforms) > 0 && len(problems) == 0 {
		for _, p := range req.Platforms {
			if !slices.Contains(out.Platforms, p) {
				problems = append(problems, fmt.Errorf("no image of %s among %s", p, strings.Join(req.Manifests, ", ")))
			}
		}
		for _, p := range out.Platforms {
			if !slices.Contains(req.Platforms, p) {
				problems = append(problems, fmt.Errorf("%s is an image of %s, which is not one of %s", seen[p], p, strings.Join(req.Platforms, ", ")))
			}
		}
	}
	if len(problems) > 0 {
		return Index{}, errors.Join(problems...)
	}

	var adds []mutate.IndexAddendum
	for _, s := range sources {
		if s.ref.Context() != repo {
			if err := c.copyInto(ctx, repo, s); err != nil {
				problems = append(problems, err)
				continue
			}
			out.Copied = append(out.Copied, s.ref.String())
		}
		adds = append(adds, s.adds...)
	}
	if len(problems) > 0 {
		return Index{}, errors.Join(problems...)
	}

	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	if len(req.Annotations) > 0 {
		idx = mutate.Annotations(idx, req.Annotations).(v1.ImageIndex)
	}
	for i, tag := range tags {
		var err error
		if i == 0 {
			// WriteIndex checks that every entry is in the repository first.
			err = remote.WriteIndex(tag, idx, c.options(ctx)...)
		} else {
			err = remote.Put(tag, idx, c.options(ctx)...)
		}
		if err != nil {
			return Index{}, fmt.Errorf("push the image index as %s: %w", tag, err)
		}
	}
	d, err := partialDescriptor(idx)
	if err != nil {
		return Index{}, err
	}
	out.Descriptor = d
	return out, nil
}

// fetchSource reads the manifest at ref, which must be in repo's registry, and
// the index entries it makes.
func (c *Client) fetchSource(ctx context.Context, repo name.Repository, ref string) (source, error) {
	r, err := c.parse(ref)
	if err != nil {
		return source{}, fmt.Errorf("%s: %w", ref, err)
	}
	d, ok := r.(name.Digest)
	if !ok {
		return source{}, fmt.Errorf("%s: not a reference by digest", ref)
	}
	if d.Context().Registry != repo.Registry {
		return source{}, fmt.Errorf("%s: in another registry than %s; push that platform to %s (a merge copies manifests only within its registry)", ref, repo, repo.RegistryStr())
	}
	desc, err := c.fetch(ctx, d)
	switch {
	case err != nil:
		return source{}, fmt.Errorf("read %s: %w", ref, err)
	case desc == nil:
		return source{}, fmt.Errorf("%s: no such manifest in %s; was it pushed there (the digest output of a push-by-digest step)?", ref, d.Context())
	}
	s := source{ref: d, desc: desc}
	s.adds, err = addenda(desc)
	if err != nil {
		return source{}, fmt.Errorf("%s: %w", ref, err)
	}
	return s, nil
}

// addenda are the index entries for d: an image with the platform of its
// config, or the entries of an index (an image with attestations).
func addenda(d *remote.Descriptor) ([]mutate.IndexAddendum, error) {
	switch {
	case d.MediaType.IsImage():
		img, err := d.Image()
		if err != nil {
			return nil, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("read its config: %w", err)
		}
		pl := cf.Platform()
		if pl == nil || pl.OS == "" || pl.Architecture == "" {
			return nil, errors.New("its config names no platform (os and architecture)")
		}
		return []mutate.IndexAddendum{{Add: img, Descriptor: v1.Descriptor{Platform: pl}}}, nil
	case d.MediaType.IsIndex():
		idx, err := d.ImageIndex()
		if err != nil {
			return nil, err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, err
		}
		var adds []mutate.IndexAddendum
		for _, m := range im.Manifests {
			if m.Platform == nil && !isAttestation(m) {
				return nil, fmt.Errorf("its entry %s names no platform", m.Digest)
			}
			var child mutate.Appendable
			switch {
			case m.MediaType.IsImage():
				child, err = idx.Image(m.Digest)
			case m.MediaType.IsIndex():
				child, err = idx.ImageIndex(m.Digest)
			default:
				return nil, fmt.Errorf("its entry %s is a %s, not an image", m.Digest, m.MediaType)
			}
			if err != nil {
				return nil, err
			}
			adds = append(adds, mutate.IndexAddendum{Add: child, Descriptor: v1.Descriptor{Platform: m.Platform, Annotations: m.Annotations}})
		}
		return adds, nil
	}
	return nil, fmt.Errorf("is a %s, not an image or image index", d.MediaType)
}

// isAttestation tells BuildKit's attestation entries (provenance, SBOM), which
// have platform unknown/unknown and say which image they describe.
func isAttestation(d v1.Descriptor) bool {
	return d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" ||
		(d.Platform != nil && d.Platform.OS == "unknown" && d.Platform.Architecture == "unknown")
}

// platformString is p as containerd writes it, normalized (linux/arm64, not linux/arm64/v8).
func platformString(p *v1.Platform) string {
	return platforms.Format(platforms.Normalize(ocispecs.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}))
}

// copyInto copies s, from another repository of the registry, into repo by
// digest: the registry mounts its blobs where it can, else they are streamed.
func (c *Client) copyInto(ctx context.Context, repo name.Repository, s source) error {
	if err := remote.Push(repo.Digest(s.ref.DigestStr()), s.desc, c.options(ctx)...); err != nil {
		return fmt.Errorf("%s: could not copy it into %s (%w); push that platform to %s directly", s.ref, repo, err, repo)
	}
	return nil
}

func partialDescriptor(idx v1.ImageIndex) (v1.Descriptor, error) {
	mt, err := idx.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	dg, err := idx.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	size, err := idx.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Digest: dg, Size: size}, nil
}

// parseTag parses a tag reference, which must be in repo.
func (c *Client) parseTag(ref string, repo name.Repository) (name.Tag, error) {
	r, err := c.parse(ref)
	if err != nil {
		return name.Tag{}, err
	}
	t, ok := r.(name.Tag)
	if !ok || t.Context() != repo {
		return name.Tag{}, fmt.Errorf("%s: not a tag of %s", ref, repo)
	}
	return t, nil
}

// Stage tags, as ref, a one-entry OCI index of image (a reference by digest in
// ref's repository) with the given platform and annotations: a run-scoped tag
// that a later merge step reads back with Staged. The tag never names the
// image itself, so removing it (even deleting its manifest by digest, all a
// plain registry can do) never touches the image or an index that holds it.
// Annotations unique to the run keep its index's digest its own.
func (c *Client) Stage(ctx context.Context, image, ref, platform string, annotations map[string]string) error {
	img, err := c.parse(image)
	if err != nil {
		return err
	}
	dg, ok := img.(name.Digest)
	if !ok {
		return fmt.Errorf("stage %s: not a reference by digest", image)
	}
	tag, err := c.parseTag(ref, dg.Context())
	if err != nil {
		return fmt.Errorf("stage %s: %w", image, err)
	}
	pl, err := v1.ParsePlatform(platform)
	if err != nil {
		return fmt.Errorf("stage %s: platform %q: %w", image, platform, err)
	}
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	d, err := c.fetch(ctx, dg)
	switch {
	case err != nil:
		return fmt.Errorf("stage %s: %w", image, err)
	case d == nil:
		return fmt.Errorf("stage %s: no such manifest", image)
	}
	var child mutate.Appendable
	if d.MediaType.IsIndex() {
		child, err = d.ImageIndex()
	} else {
		child, err = d.Image()
	}
	if err != nil {
		return fmt.Errorf("stage %s: %w", image, err)
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: child, Descriptor: v1.Descriptor{Platform: pl}})
	idx = mutate.Annotations(idx, annotations).(v1.ImageIndex)
	if err := remote.Put(tag, idx, c.options(ctx)...); err != nil {
		return fmt.Errorf("stage %s as %s: %w", image, ref, err)
	}
	return nil
}

// Staged reads the staging tag ref that Stage wrote: the image it holds, as a
// reference by digest; found is false when there is no such tag.
func (c *Client) Staged(ctx context.Context, ref string) (image string, found bool, err error) {
	n, err := c.parse(ref)
	if err != nil {
		return "", false, err
	}
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	d, err := c.fetch(ctx, n)
	switch {
	case err != nil:
		return "", false, fmt.Errorf("read %s: %w", ref, err)
	case d == nil:
		return "", false, nil
	}
	var entries []v1.Descriptor
	if d.MediaType.IsIndex() {
		im, err := v1.ParseIndexManifest(bytes.NewReader(d.Manifest))
		if err != nil {
			return "", true, fmt.Errorf("read %s: %w", ref, err)
		}
		entries = im.Manifests
	}
	if len(entries) != 1 {
		return "", true, fmt.Errorf("%s holds a %s, not a staged image (a one-entry index); something else wrote that tag", ref, d.MediaType)
	}
	return n.Context().Digest(entries[0].Digest.String()).String(), true, nil
}
