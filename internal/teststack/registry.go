package teststack

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
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

// Tags lists the tags of a repository in a plain-HTTP registry.
func Tags(repo string) ([]string, error) {
	r, err := name.NewRepository(repo, name.Insecure)
	if err != nil {
		return nil, err
	}
	return remote.List(r)
}
