package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Artifact is an OCI artifact the action keeps next to its cache (the cache
// mounts' contents): an image manifest whose config media type names what it
// holds.
type Artifact struct {
	Ref      string
	Digest   v1.Hash // the manifest's
	Manifest *v1.Manifest
}

// Artifact fetches the manifest at ref: nil without error when the tag does
// not exist.
func (c *Client) Artifact(ctx context.Context, ref string) (*Artifact, error) {
	p := c.get(ctx, ref)
	switch {
	case p.Err != nil:
		return nil, p.Err
	case !p.Exists():
		return nil, nil
	case p.desc.MediaType.IsIndex():
		return nil, fmt.Errorf("%s holds an image index, not an artifact", ref)
	}
	m, err := v1.ParseManifest(bytes.NewReader(p.desc.Manifest))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ref, err)
	}
	return &Artifact{Ref: ref, Digest: p.desc.Digest, Manifest: m}, nil
}

// Download copies the blob dgst of ref's repository to w. The digest is
// checked as the blob streams (go-containerregistry verifies it at the end);
// ctx bounds the whole transfer.
func (c *Client) Download(ctx context.Context, ref string, dgst v1.Hash, w io.Writer) error {
	n, err := c.parse(ref)
	if err != nil {
		return err
	}
	l, err := remote.Layer(n.Context().Digest(dgst.String()), c.options(ctx)...)
	if err != nil {
		return fmt.Errorf("download %s: %w", dgst, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("download %s: %w", dgst, err)
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return fmt.Errorf("download %s: %w", dgst, err)
	}
	return nil
}

// Blob is a blob to upload; Open is called again on every attempt.
type Blob struct {
	Descriptor v1.Descriptor
	Open       func() (io.ReadCloser, error)
}

// PushArtifact uploads the blobs the repository lacks (one HEAD each for
// those it has), then puts manifest (an OCI image manifest) at ref's tag. ctx
// bounds the whole transfer.
func (c *Client) PushArtifact(ctx context.Context, ref string, blobs []Blob, manifest []byte) error {
	n, err := c.parse(ref)
	if err != nil {
		return err
	}
	tag, ok := n.(name.Tag)
	if !ok {
		return fmt.Errorf("push %s: not a tag", ref)
	}
	for _, b := range blobs {
		l, err := partial.CompressedToLayer(blobLayer{b})
		if err != nil {
			return err
		}
		if err := remote.WriteLayer(tag.Context(), l, c.options(ctx)...); err != nil {
			return fmt.Errorf("upload %s to %s: %w", b.Descriptor.Digest, tag.Context(), err)
		}
	}
	if err := remote.Put(tag, rawManifest{body: manifest, mediaType: types.OCIManifestSchema1}, c.options(ctx)...); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

// blobLayer is a Blob as go-containerregistry's partial.CompressedLayer.
type blobLayer struct{ b Blob }

func (l blobLayer) Digest() (v1.Hash, error)            { return l.b.Descriptor.Digest, nil }
func (l blobLayer) Compressed() (io.ReadCloser, error)  { return l.b.Open() }
func (l blobLayer) Size() (int64, error)                { return l.b.Descriptor.Size, nil }
func (l blobLayer) MediaType() (types.MediaType, error) { return l.b.Descriptor.MediaType, nil }
