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
	Err    error
	layers map[string]bool
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

// layers returns the layer digests of ref's manifest; found is false on 404.
func (r Registry) layers(ctx context.Context, ref string) (layers map[string]bool, found bool, err error) {
	n, err := r.parse(ref)
	if err != nil {
		return nil, false, err
	}
	// go-containerregistry retries 429 and 5xx three times, 1 s and 3 s apart, and
	// ignores Retry-After (google/go-containerregistry#1569): the transport waits for it.
	d, err := remote.Get(n, remote.WithContext(ctx), remote.WithAuthFromKeychain(r.Keychain),
		remote.WithTransport(&retryafter.Transport{Base: remote.DefaultTransport}))
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(d.Manifest))
	if err != nil {
		return nil, true, fmt.Errorf("parse manifest of %s: %w", ref, err)
	}
	layers = make(map[string]bool, len(m.Layers))
	for _, l := range m.Layers {
		layers[l.Digest.String()] = true
	}
	return layers, true, nil
}

// Refs probes every ref, in order.
func (r Registry) Refs(ctx context.Context, refs []string) []Ref {
	out := make([]Ref, 0, len(refs))
	for _, ref := range refs {
		layers, found, err := r.layers(ctx, ref)
		out = append(out, Ref{Ref: ref, Exists: found, Err: err, layers: layers})
	}
	return out
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
	layers, found, err := r.layers(ctx, built)
	if err != nil {
		return "", fmt.Errorf("read layers of %s: %w", built, err)
	}
	if !found {
		return "", fmt.Errorf("read layers of %s: not found", built)
	}
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
