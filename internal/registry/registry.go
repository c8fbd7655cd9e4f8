// Package registry is the action's one client for its own registry calls (the
// image build and cache transfers are BuildKit's): it probes cache references
// before a build, checks that the registry still has every blob of a cache,
// tags a cache again, and reads a pushed image's layers. It is transport
// only: which cache to import, which served the build, and the words for
// each, are the run's (internal/run, plan.go). Every call shares one
// transport, one keychain, one reference parser and one rule for plain-HTTP
// hosts, and every call has a deadline.
package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/errgroup"

	"github.com/ecr-build-cache/ecr-build-cache/internal/retryafter"
)

// CacheConfigType is the config media type of a BuildKit cache manifest
// (image-manifest=true), and of the config entry of a legacy cache index.
const CacheConfigType = "application/vnd.buildkit.cacheconfig.v0"

// Deadlines: a host that accepts connections and never answers costs at most
// CallTimeout per call (go-containerregistry's default transport has no
// response-header timeout), and the probes of one run, made at once, at most
// ProbeTimeout; checking the blobs of the cache to import takes at most
// CallTimeout more.
const (
	CallTimeout  = 30 * time.Second
	ProbeTimeout = 30 * time.Second
)

// blobChecks is how many blob HEAD requests run at once.
const blobChecks = 8

// Kind is what a probed tag holds.
type Kind int

const (
	Missing     Kind = iota // no such tag
	Cache                   // a BuildKit cache manifest (image-manifest=true), what this action writes
	LegacyCache             // a BuildKit cache index (image-manifest=false), which ECR rejects
	NotCache                // anything else, e.g. an ordinary image pushed to a cache tag
)

// Ref is what the registry said about one cache reference.
type Ref struct {
	Ref  string
	Kind Kind
	// Err is set when the registry could not tell (not a plain "not found").
	Err error
	// Unreachable is set when the host did not answer in time: BuildKit would
	// hang on it too, so such a ref is never imported.
	Unreachable bool
	Layers      map[string]bool
	// Annotations are the manifest's, for an image manifest.
	Annotations map[string]string
	// Complete is set when the registry answered a HEAD request for every blob
	// the cache manifest names; Missing lists the blobs it said it lacks
	// (registries lose blobs: garbage-collection races, interrupted
	// replication). Set by CheckBlobs, which the run calls for the cache it
	// would import only.
	Complete bool
	Missing  []string
	name     name.Reference
	desc     *remote.Descriptor
}

// Exists reports whether the tag is there, whatever it holds.
func (r Ref) Exists() bool { return r.Kind != Missing }

// Client makes the action's registry calls with its credentials.
type Client struct {
	keychain     authn.Keychain
	insecureHost string
	transport    http.RoundTripper
}

// New returns a client that authenticates with keychain and reaches
// insecureHost ("" for none) over plain HTTP.
func New(keychain authn.Keychain, insecureHost string) *Client {
	t := remote.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 20 * time.Second
	// go-containerregistry retries 429 and 5xx three times, 1 s and 3 s apart, and
	// ignores Retry-After (google/go-containerregistry#1569): the transport waits for it.
	return &Client{keychain: keychain, insecureHost: insecureHost, transport: &retryafter.Transport{Base: t}}
}

// Insecure reports whether ref's host is reached over plain HTTP.
func (c *Client) Insecure(ref string) bool {
	if c.insecureHost == "" {
		return false
	}
	n, err := name.ParseReference(ref)
	return err == nil && n.Context().RegistryStr() == c.insecureHost
}

func (c *Client) parse(ref string) (name.Reference, error) {
	return name.ParseReference(ref, c.nameOptions(ref)...)
}

// nameOptions makes a reference to ref's host plain HTTP when it is the insecure host.
func (c *Client) nameOptions(ref string) []name.Option {
	if c.Insecure(ref) {
		return []name.Option{name.Insecure}
	}
	return nil
}

func (c *Client) options(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(c.keychain), remote.WithTransport(c.transport)}
}

// Probe asks for every ref at once, within ProbeTimeout in all, so that a
// stuck host cannot use up the time of another. It reads manifests only:
// CheckBlobs checks a cache's blobs.
func (c *Client) Probe(ctx context.Context, refs []string) []Ref {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	out := make([]Ref, len(refs))
	var wg sync.WaitGroup
	for i, ref := range refs {
		wg.Go(func() { out[i] = c.get(ctx, ref) })
	}
	wg.Wait()
	return out
}

// CheckBlobs asks the registry, with a HEAD request each, for the config and
// layers of p's cache manifest (p from Probe, of Kind Cache): BuildKit fetches them only when a step needs
// their content, so a missing one fails a build long after the import, or
// never shows when every step is cached and nothing is pushed. A check that
// cannot finish leaves p neither Complete nor Missing, with Err set.
func (c *Client) CheckBlobs(ctx context.Context, p *Ref) {
	if p.desc == nil {
		p.Err = fmt.Errorf("check the blobs of %s: not probed as a cache", p.Ref)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	m, err := v1.ParseManifest(bytes.NewReader(p.desc.Manifest))
	if err != nil {
		p.Err = fmt.Errorf("read %s: %w", p.Ref, err)
		return
	}
	repo := p.name.Context()
	auth, err := authn.Resolve(ctx, c.keychain, repo)
	if err != nil {
		p.Err = fmt.Errorf("check the blobs of %s: %w", p.Ref, err)
		return
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, c.transport, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		p.Err = fmt.Errorf("check the blobs of %s: %w", p.Ref, err)
		return
	}
	blobs := append([]v1.Descriptor{m.Config}, m.Layers...)
	missing := make([]bool, len(blobs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(blobChecks)
	for i, b := range blobs {
		g.Go(func() error {
			u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", repo.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), b.Digest)
			req, err := http.NewRequestWithContext(gctx, http.MethodHead, u, nil)
			if err != nil {
				return err
			}
			resp, err := rt.RoundTrip(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
			case http.StatusNotFound:
				missing[i] = true
			default:
				return fmt.Errorf("HEAD %s: %s", u, resp.Status)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		p.Err = fmt.Errorf("check the blobs of %s: %w", p.Ref, err)
		return
	}
	for i, b := range blobs {
		if missing[i] {
			p.Missing = append(p.Missing, b.Digest.String())
		}
	}
	p.Complete = len(p.Missing) == 0
}

// get fetches ref's manifest and the layer digests of the image(s) it holds.
func (c *Client) get(ctx context.Context, ref string) Ref {
	p := Ref{Ref: ref}
	n, err := c.parse(ref)
	if err != nil {
		p.Err = err
		return p
	}
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel() // after classify, whose reads use ctx too
	d, err := c.fetch(ctx, n)
	switch {
	case err != nil:
		p.Err, p.Unreachable = err, timedOut(ctx, err)
		return p
	case d == nil:
		return p
	}
	p.name, p.desc = n, d
	p.Kind, p.Layers, p.Annotations, p.Err = classify(d)
	if p.Err != nil {
		p.Err = fmt.Errorf("read %s: %w", ref, p.Err)
	}
	return p
}

// fetch gets ref's manifest; nil without an error when there is no such
// manifest. The descriptor's later reads (config, an index's entries) use ctx
// too, so its deadline must cover them.
func (c *Client) fetch(ctx context.Context, ref name.Reference) (*remote.Descriptor, error) {
	d, err := remote.Get(ref, c.options(ctx)...)
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	return d, err
}

// timedOut tells a host that did not answer from one that answered with an error.
func timedOut(ctx context.Context, err error) bool {
	var ne net.Error
	return ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// classify says what d holds and collects the layers of its image(s): an index
// (multi-platform or attested image) contributes every child manifest's layers.
func classify(d *remote.Descriptor) (Kind, map[string]bool, map[string]string, error) {
	layers := map[string]bool{}
	add := func(m *v1.Manifest) {
		for _, l := range m.Layers {
			layers[l.Digest.String()] = true
		}
	}
	if !d.MediaType.IsIndex() {
		m, err := v1.ParseManifest(bytes.NewReader(d.Manifest))
		if err != nil {
			return NotCache, nil, nil, err
		}
		add(m)
		if m.Config.MediaType == CacheConfigType {
			return Cache, layers, m.Annotations, nil
		}
		return NotCache, layers, m.Annotations, nil
	}
	idx, err := d.ImageIndex()
	if err != nil {
		return NotCache, nil, nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return NotCache, nil, nil, err
	}
	for _, m := range im.Manifests {
		switch {
		case m.MediaType == CacheConfigType:
			// A legacy cache index lists its layers and config directly.
			return LegacyCache, nil, nil, nil
		case m.MediaType.IsImage():
			img, err := idx.Image(m.Digest)
			if err != nil {
				return NotCache, nil, nil, err
			}
			m, err := img.Manifest()
			if err != nil {
				return NotCache, nil, nil, err
			}
			add(m)
		}
	}
	return NotCache, layers, nil, nil
}

// Tag makes to name from's cache, in the same repository: when a build took
// every step from one cache, exporting to another tag would write the same
// records and blobs again, and one manifest PUT does it.
func (c *Client) Tag(ctx context.Context, from Ref, to string) error {
	src, err := c.parse(from.Ref)
	if err != nil {
		return err
	}
	dst, err := c.parse(to)
	if err != nil {
		return err
	}
	tag, ok := dst.(name.Tag)
	if !ok || from.desc == nil || src.Context() != dst.Context() {
		return fmt.Errorf("tag %s as %s: only a fetched cache can be tagged again, within its repository", from.Ref, to)
	}
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	if err := remote.Tag(tag, from.desc, c.options(ctx)...); err != nil {
		return fmt.Errorf("tag %s as %s: %w", from.Ref, to, err)
	}
	return nil
}

// Layers reads the layer digests of the image (or every image of the index) at ref.
func (c *Client) Layers(ctx context.Context, ref string) (map[string]bool, error) {
	p := c.get(ctx, ref)
	switch {
	case p.Err != nil:
		return nil, fmt.Errorf("read layers of %s: %w", ref, p.Err)
	case !p.Exists():
		return nil, fmt.Errorf("read layers of %s: not found", ref)
	}
	return p.Layers, nil
}
