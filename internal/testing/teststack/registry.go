package teststack

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Manifest fetches ref's manifest from a plain-HTTP registry; found is false when
// the tag does not exist.
func Manifest(ref string, auth authn.Authenticator) (m *remote.Descriptor, found bool, err error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return nil, false, err
	}
	if auth == nil {
		auth = authn.Anonymous
	}
	d, err := remote.Get(r, remote.WithAuth(auth))
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == 404 {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get %s: %w", ref, err)
	}
	return d, true, nil
}

// ImageFile returns the content of path in the image at ref (flattened layers).
func ImageFile(ref, path string, auth authn.Authenticator) (string, error) {
	d, found, err := Manifest(ref, auth)
	if err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("%s: no such tag", ref)
	}
	img, err := d.Image()
	if err != nil {
		return "", err
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	want := strings.TrimPrefix(path, "/")
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return "", fmt.Errorf("%s: no file %s", ref, path)
		}
		if err != nil {
			return "", err
		}
		if strings.TrimPrefix(h.Name, "/") == want {
			b, err := io.ReadAll(tr)
			return string(b), err
		}
	}
}

// MustTags is Tags for a test: it fails the test when the registry does not answer.
func MustTags(t testing.TB, repo string) []string {
	t.Helper()
	tags, err := Tags(repo)
	if err != nil {
		t.Fatal(err)
	}
	return tags
}

// Tags lists the tags of a repository in a plain-HTTP registry.
func Tags(repo string) ([]string, error) {
	r, err := name.NewRepository(repo, name.Insecure)
	if err != nil {
		return nil, err
	}
	return remote.List(r)
}

// Contains reports whether needle appears anywhere in what ref points at: its
// manifests, configs and uncompressed layers (every platform of an index).
func Contains(ref string, needle []byte, auth authn.Authenticator) (bool, error) {
	d, found, err := Manifest(ref, auth)
	if err != nil || !found {
		return false, fmt.Errorf("%s: found=%v: %w", ref, found, err)
	}
	if bytes.Contains(d.Manifest, needle) {
		return true, nil
	}
	var imgs []v1.Image
	if d.MediaType.IsIndex() {
		idx, err := d.ImageIndex()
		if err != nil {
			return false, err
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return false, err
		}
		for _, c := range m.Manifests {
			img, err := idx.Image(c.Digest)
			if err != nil {
				return false, err
			}
			imgs = append(imgs, img)
		}
	} else {
		img, err := d.Image()
		if err != nil {
			return false, err
		}
		imgs = append(imgs, img)
	}
	for _, img := range imgs {
		if hit, err := imageContains(img, needle); hit || err != nil {
			return hit, err
		}
	}
	return false, nil
}

func imageContains(img v1.Image, needle []byte) (bool, error) {
	for _, raw := range []func() ([]byte, error){img.RawManifest, img.RawConfigFile} {
		b, err := raw()
		if err != nil {
			return false, err
		}
		if bytes.Contains(b, needle) {
			return true, nil
		}
	}
	layers, err := img.Layers()
	if err != nil {
		return false, err
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return false, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return false, err
		}
		if bytes.Contains(b, needle) {
			return true, nil
		}
	}
	return false, nil
}
