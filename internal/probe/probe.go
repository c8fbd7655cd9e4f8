// Package probe asks the registry which cache references exist before a build,
// so that BuildKit imports only those, in priority order (several cache-from refs
// with missing ones behave surprisingly, moby/buildkit#6418), and tells afterwards
// which imported cache the built image's layers came from.
package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ecr-build-cache/ecr-build-cache/internal/retryafter"
)

// Ref is what the registry said about one cache reference.
type Ref struct {
	Ref    string
	Exists bool
	// Err is set when the registry could not tell (not a plain "not found"); such
	// a ref is kept for import, since BuildKit ignores a missing cache.
	Err      error
	layers   map[string]bool
	manifest *remote.Descriptor
}

// Registry fetches manifests with the action's credentials.
type Registry struct {
	Keychain authn.Keychain
	// InsecureHost is a host reached over plain HTTP.
	InsecureHost string
}

func (r Registry) parse(ref string) (name.Reference, error) {
	var opts []name.Option
	if r.InsecureHost != "" {
		if n, err := name.ParseReference(ref); err == nil && n.Context().RegistryStr() == r.InsecureHost {
			opts = append(opts, name.Insecure)
		}
	}
	return name.ParseReference(ref, opts...)
}

func (r Registry) options(ctx context.Context) []remote.Option {
	// go-containerregistry retries 429 and 5xx three times, 1 s and 3 s apart, and
	// ignores Retry-After (google/go-containerregistry#1569): the transport waits for it.
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(r.Keychain),
		remote.WithTransport(&retryafter.Transport{Base: remote.DefaultTransport})}
}

// get fetches ref's manifest and its layer digests; Exists is false on 404.
func (r Registry) get(ctx context.Context, ref string) Ref {
	p := Ref{Ref: ref}
	n, err := r.parse(ref)
	if err != nil {
		p.Err = err
		return p
	}
	d, err := remote.Get(n, r.options(ctx)...)
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
		return p
	}
	if err != nil {
		p.Err = err
		return p
	}
	p.Exists, p.manifest = true, d
	m, err := v1.ParseManifest(bytes.NewReader(d.Manifest))
	if err != nil {
		p.Err = fmt.Errorf("parse manifest of %s: %w", ref, err)
		return p
	}
	p.layers = make(map[string]bool, len(m.Layers))
	for _, l := range m.Layers {
		p.layers[l.Digest.String()] = true
	}
	return p
}

// Refs probes every ref, in order.
func (r Registry) Refs(ctx context.Context, refs []string) []Ref {
	out := make([]Ref, 0, len(refs))
	for _, ref := range refs {
		out = append(out, r.get(ctx, ref))
	}
	return out
}

// Copy makes the tag to name from's cache, in the same repository: when a build
// took every step from one cache, exporting to another tag would write the same
// records and blobs again, and one manifest PUT does it.
func (r Registry) Copy(ctx context.Context, from Ref, to string) error {
	src, err := r.parse(from.Ref)
	if err != nil {
		return err
	}
	dst, err := r.parse(to)
	if err != nil {
		return err
	}
	tag, ok := dst.(name.Tag)
	if !ok || from.manifest == nil || src.Context() != dst.Context() {
		return fmt.Errorf("copy %s to %s: only a fetched cache can be tagged again, within its repository", from.Ref, to)
	}
	if err := remote.Tag(tag, from.manifest, r.options(ctx)...); err != nil {
		return fmt.Errorf("tag %s as %s: %w", from.Ref, to, err)
	}
	return nil
}

// Importable picks what to import: the highest-priority cache that exists, after
// any higher-priority ref that could not be checked. Only one known cache, because
// BuildKit picks among several imported caches unpredictably and may follow the
// fallback's records past the steps they share, missing the rest of the branch's
// own cache (moby/buildkit#6418).
func Importable(probed []Ref) []string {
	var out []string
	for _, p := range probed {
		if p.Exists || p.Err != nil {
			out = append(out, p.Ref)
		}
		if p.Exists {
			break
		}
	}
	return out
}

// Served returns the probed cache that holds most of built's layers (the image
// or cache manifest this run pushed), preferring the higher-priority ref on a
// tie; "" when no imported cache holds any of them.
func (r Registry) Served(ctx context.Context, probed []Ref, built string) (string, error) {
	b := r.get(ctx, built)
	if b.Err != nil {
		return "", fmt.Errorf("read layers of %s: %w", built, b.Err)
	}
	if !b.Exists {
		return "", fmt.Errorf("read layers of %s: not found", built)
	}
	layers := b.layers
	best, bestN := "", 0
	for _, p := range probed {
		n := 0
		for l := range layers {
			if p.layers[l] {
				n++
			}
		}
		if n > bestN {
			best, bestN = p.Ref, n
		}
	}
	return best, nil
}
