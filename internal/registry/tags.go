package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ListTimeout bounds listing a repository's tags with their digests.
const ListTimeout = 2 * time.Minute

// headWorkers is how many tags' digests are asked for at once.
const headWorkers = 4

// repository parses host/path, plain HTTP for the insecure host.
func (c *Client) repository(repository string) (name.Repository, error) {
	r, err := name.NewRepository(repository, c.nameOptions(repository)...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("repository %s: %w", repository, err)
	}
	return r, nil
}

// TagDigests lists the tags of repository (host/path) with the manifest digest
// each names. A tag deleted while listing is left out.
func (c *Client) TagDigests(ctx context.Context, repository string) (map[string]string, error) {
	repo, err := c.repository(repository)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, ListTimeout)
	defer cancel()
	tags, err := remote.List(repo, c.options(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("list the tags of %s: %w", repository, err)
	}
	var (
		mu      sync.Mutex
		out     = make(map[string]string, len(tags))
		errs    []error
		wg      sync.WaitGroup
		pending = make(chan string)
	)
	for range min(headWorkers, len(tags)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tag := range pending {
				d, err := c.head(ctx, repo.Tag(tag))
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err)
				case d != "":
					out[tag] = d
				}
				mu.Unlock()
			}
		}()
	}
	for _, t := range tags {
		pending <- t
	}
	close(pending)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("list the tags of %s: %w", repository, err)
	}
	return out, nil
}

// head is the digest ref names, "" when it names nothing.
func (c *Client) head(ctx context.Context, ref name.Reference) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	d, err := remote.Head(ref, c.options(ctx)...)
	var terr *transport.Error
	switch {
	case errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound:
		return "", nil
	case err != nil:
		return "", err
	}
	return d.Digest.String(), nil
}

// ErrDeleteUnsupported marks a registry that refuses to delete manifests.
var ErrDeleteUnsupported = errors.New("the registry does not allow deleting manifests")

// DeleteManifest deletes the manifest digest from repository. The registry
// API deletes by digest only, and every tag that names the manifest goes
// with it.
func (c *Client) DeleteManifest(ctx context.Context, repository, digest string) error {
	repo, err := c.repository(repository)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	err = remote.Delete(repo.Digest(digest), c.options(ctx)...)
	var terr *transport.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &terr) && (terr.StatusCode == http.StatusMethodNotAllowed || hasCode(terr, transport.UnsupportedErrorCode)):
		return fmt.Errorf("delete %s@%s: %w (%w)", repository, digest, ErrDeleteUnsupported, err)
	}
	return fmt.Errorf("delete %s@%s: %w", repository, digest, err)
}

func hasCode(terr *transport.Error, code transport.ErrorCode) bool {
	for _, e := range terr.Errors {
		if e.Code == code {
			return true
		}
	}
	return false
}

// RefreshAnnotation is the manifest annotation Refresh sets to the time of the
// refresh.
const RefreshAnnotation = "com.github.ecr-build-cache.refreshed"

// InputsAnnotation is the cache manifest annotation naming the fingerprint of
// the build inputs that wrote the cache (solve.Fingerprint).
const InputsAnnotation = "com.github.ecr-build-cache.inputs"

// Refresh puts the manifest ref names again under the same tag, changed only
// by RefreshAnnotation set to at: a new manifest digest over the same config
// and layers, so a registry that dates images by their first push (ECR) dates
// it anew. It returns the new digest.
func (c *Client) Refresh(ctx context.Context, ref string, at time.Time) (string, error) {
	return c.Annotate(ctx, ref, map[string]string{RefreshAnnotation: at.UTC().Format(time.RFC3339Nano)})
}

// Annotate puts the image manifest tag ref names again under the same tag
// with set added to its annotations (a new digest over the same config and
// layers). It returns the new digest.
func (c *Client) Annotate(ctx context.Context, ref string, set map[string]string) (string, error) {
	n, err := c.parse(ref)
	if err != nil {
		return "", err
	}
	tag, ok := n.(name.Tag)
	if !ok {
		return "", fmt.Errorf("annotate %s: not a tag", ref)
	}
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	d, err := remote.Get(tag, c.options(ctx)...)
	if err != nil {
		return "", fmt.Errorf("annotate %s: %w", ref, err)
	}
	if !d.MediaType.IsImage() {
		return "", fmt.Errorf("annotate %s: a %s, not an image manifest", ref, d.MediaType)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(d.Manifest, &m); err != nil {
		return "", fmt.Errorf("annotate %s: %w", ref, err)
	}
	annotations := map[string]string{}
	if raw, ok := m["annotations"]; ok {
		if err := json.Unmarshal(raw, &annotations); err != nil {
			return "", fmt.Errorf("annotate %s: annotations: %w", ref, err)
		}
	}
	maps.Copy(annotations, set)
	if m["annotations"], err = json.Marshal(annotations); err != nil {
		return "", err
	}
	body, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	raw := rawManifest{body: body, mediaType: d.MediaType}
	if err := remote.Put(tag, raw, c.options(ctx)...); err != nil {
		return "", fmt.Errorf("annotate %s: %w", ref, err)
	}
	return raw.digest(), nil
}

// Digest is the digest of the manifest ref names, "" when there is none.
func (c *Client) Digest(ctx context.Context, ref string) (string, error) {
	n, err := c.parse(ref)
	if err != nil {
		return "", err
	}
	return c.head(ctx, n)
}

// rawManifest is a manifest to put as it is.
type rawManifest struct {
	body      []byte
	mediaType types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.body, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mediaType, nil }

func (r rawManifest) digest() string {
	h, _, _ := v1.SHA256(bytes.NewReader(r.body)) // reading memory cannot fail
	return h.String()
}
