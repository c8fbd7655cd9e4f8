package fakeecr

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// The double's own calls to the registry behind the front, which needs no
// credentials. Distribution hides manifests whose type the client does not
// accept, so every manifest call accepts them all.
var acceptManifests = strings.Join([]string{ociManifest, ociIndex, dockerManifest, dockerList}, ", ")

func (s *Server) upstreamDo(ctx context.Context, method, name, kind, ref string, body io.Reader, header http.Header) (*http.Response, error) {
	u := s.upstream.JoinPath("v2", name, kind, ref)
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	return resp, nil
}

// upstreamTags lists a repository's tags; a repository without any has none.
func (s *Server) upstreamTags(ctx context.Context, name string) ([]string, error) {
	resp, err := s.upstreamDo(ctx, http.MethodGet, name, "tags", "list", nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, nil
	default:
		return nil, fmt.Errorf("list tags of %s upstream: %s", name, resp.Status)
	}
	var list struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("list tags of %s upstream: %w", name, err)
	}
	return list.Tags, nil
}

// upstreamDigest is the digest of the manifest ref (a tag or digest) names.
func (s *Server) upstreamDigest(ctx context.Context, name, ref string) (digest string, found bool, err error) {
	resp, err := s.upstreamDo(ctx, http.MethodHead, name, "manifests", ref, nil, http.Header{"Accept": {acceptManifests}})
	if err != nil {
		return "", false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Header.Get("Docker-Content-Digest"), true, nil
	case http.StatusNotFound:
		return "", false, nil
	}
	return "", false, fmt.Errorf("check %s:%s upstream: %s", name, ref, resp.Status)
}

// upstreamManifest reads the manifest ref names.
func (s *Server) upstreamManifest(ctx context.Context, name, ref string) (body []byte, mediaType string, found bool, err error) {
	resp, err := s.upstreamDo(ctx, http.MethodGet, name, "manifests", ref, nil, http.Header{"Accept": {acceptManifests}})
	if err != nil {
		return nil, "", false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, "", false, nil
	default:
		return nil, "", false, fmt.Errorf("read %s:%s upstream: %s", name, ref, resp.Status)
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxManifestBytes))
	return body, resp.Header.Get("Content-Type"), err == nil, err
}

// upstreamDelete deletes the manifest ref names; ok is false when the
// registry refuses (distribution 2.x refuses tags), err is set when it failed.
func (s *Server) upstreamDelete(ctx context.Context, name, ref string) (ok bool, err error) {
	resp, err := s.upstreamDo(ctx, http.MethodDelete, name, "manifests", ref, nil, nil)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusAccepted:
		return true, nil
	case resp.StatusCode >= 500:
		return false, fmt.Errorf("delete %s:%s upstream: %s", name, ref, resp.Status)
	}
	return false, nil
}

// upstreamPut puts a manifest under tag.
func (s *Server) upstreamPut(ctx context.Context, name, tag, mediaType string, body []byte) error {
	resp, err := s.upstreamDo(ctx, http.MethodPut, name, "manifests", tag, bytes.NewReader(body), http.Header{"Content-Type": {mediaType}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("put %s:%s upstream: %s", name, tag, resp.Status)
	}
	return nil
}
