package fakeecr

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httputil"
	"regexp"
	"strings"
)

// Manifest media types ECR accepts as index entries.
const (
	ociManifest    = "application/vnd.oci.image.manifest.v1+json"
	ociIndex       = "application/vnd.oci.image.index.v1+json"
	dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	dockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// maxManifestBytes is ECR's manifest size limit.
const maxManifestBytes = 4 << 20

// repoPath splits a distribution API path into repository name, route kind
// and the rest (reference, digest or upload id).
var repoPath = regexp.MustCompile(`^/v2/(.+?)/(manifests|blobs|tags|referrers)/(.*)$`)

// registryError is a distribution-spec error response.
type registryError struct {
	status  int
	code    string
	message string
}

func (s *Server) writeRegistryError(w http.ResponseWriter, e *registryError) {
	h := w.Header()
	if e.status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", fmt.Sprintf(`Basic realm="https://%s/",service="ecr.amazonaws.com"`, s.RegistryHost))
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Docker-Distribution-API-Version", "registry/2.0")
	w.WriteHeader(e.status)
	type item struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	json.NewEncoder(w).Encode(map[string][]item{"errors": {{e.code, e.message}}}) //nolint:errcheck // a write error means the client went away
}

func (s *Server) registryHandler() http.Handler {
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(s.upstream)
		// Keep the front's Host: distribution builds absolute upload
		// Locations from it, so blob uploads come back through the front.
		pr.Out.Host = pr.In.Host
		// ECR credentials end here; the upstream needs none.
		pr.Out.Header.Del("Authorization")
	}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.serveRegistry(w, r, proxy); err != nil {
			s.writeRegistryError(w, err)
		}
	})
}

func (s *Server) serveRegistry(w http.ResponseWriter, r *http.Request, proxy http.Handler) *registryError {
	if r.URL.Path != "/v2" && !strings.HasPrefix(r.URL.Path, "/v2/") {
		http.NotFound(w, r)
		return nil
	}
	if err := s.authorize(r); err != nil {
		return err
	}
	if r.URL.Path == "/v2" || r.URL.Path == "/v2/" {
		proxy.ServeHTTP(w, r)
		return nil
	}
	m := repoPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		// _catalog and anything else outside a repository.
		return &registryError{http.StatusNotFound, "UNSUPPORTED", "The operation is unsupported."}
	}
	repo, ok := s.repos[m[1]]
	if !ok {
		return &registryError{http.StatusNotFound, "NAME_UNKNOWN", fmt.Sprintf(
			"The repository with name '%s' does not exist in the registry with id '%s'", m[1], s.cfg.AccountID)}
	}
	switch {
	case m[2] == "manifests" && r.Method == http.MethodPut:
		return s.putManifest(w, r, repo, m[3], proxy)
	case m[2] == "manifests" && r.Method == http.MethodGet:
		rec := &statusRecorder{ResponseWriter: w}
		proxy.ServeHTTP(rec, r)
		if rec.status == http.StatusOK {
			s.recordPull(repo.Name, rec.Header().Get("Docker-Content-Digest"))
		}
		return nil
	}
	proxy.ServeHTTP(w, r)
	return nil
}

// statusRecorder remembers the status the proxy wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// authorize accepts only Basic AWS:<password> with a live password issued
// by GetAuthorizationToken.
func (s *Server) authorize(r *http.Request) *registryError {
	user, pw, ok := r.BasicAuth()
	if !ok {
		return &registryError{http.StatusUnauthorized, "UNAUTHORIZED", "Not Authorized"}
	}
	known, expired := s.passwordState(pw)
	switch {
	case user != "AWS" || !known:
		return &registryError{http.StatusUnauthorized, "DENIED", "Your authorization token is invalid."}
	case expired:
		return &registryError{http.StatusUnauthorized, "DENIED",
			"Your authorization token has expired. Reauthenticate and try again."}
	}
	return nil
}

func (s *Server) putManifest(w http.ResponseWriter, r *http.Request, repo Repository, ref string, proxy http.Handler) *registryError {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifestBytes+1))
	if err != nil {
		return &registryError{http.StatusBadRequest, "MANIFEST_INVALID", fmt.Sprintf("reading manifest: %v", err)}
	}
	if len(body) > maxManifestBytes {
		return &registryError{http.StatusBadRequest, "MANIFEST_INVALID", "The manifest is larger than 4 MiB."}
	}
	if err := validateManifest(r.Header.Get("Content-Type"), body); err != nil {
		return err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))

	if !strings.Contains(ref, ":") && !tagMutable(repo, ref) {
		s.tagMu.Lock()
		defer s.tagMu.Unlock()
		_, exists, err := s.upstreamDigest(r.Context(), repo.Name, ref)
		if err != nil {
			return &registryError{http.StatusBadGateway, "UNKNOWN", err.Error()}
		}
		// Even the same digest is refused (moby/buildkit#3776, aws/containers-roadmap#2179).
		if exists {
			return &registryError{http.StatusBadRequest, "TAG_INVALID", fmt.Sprintf(
				"The image tag '%s' already exists in the '%s' repository and cannot be overwritten because the repository is immutable.",
				ref, repo.Name)}
		}
	}
	rec := &statusRecorder{ResponseWriter: w}
	proxy.ServeHTTP(rec, r)
	if rec.status == http.StatusCreated {
		s.recordPush(repo.Name, body)
	}
	return nil
}

// validateManifest rejects what ECR rejects and plain registries accept.
func validateManifest(contentType string, body []byte) *registryError {
	var m struct {
		MediaType string                       `json:"mediaType"`
		Manifests []struct{ MediaType string } `json:"manifests"`
		Layers    []json.RawMessage            `json:"layers"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return &registryError{http.StatusBadRequest, "MANIFEST_INVALID",
			"Invalid parameter at 'imageManifest' failed to satisfy constraint: 'Invalid JSON syntax'"}
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "" {
		mt = m.MediaType
	}
	switch mt {
	case ociIndex, dockerList:
		// The legacy BuildKit cache lists layer blobs in an index (aws/containers-roadmap#876).
		for i, d := range m.Manifests {
			switch d.MediaType {
			case ociManifest, ociIndex, dockerManifest, dockerList:
			default:
				return &registryError{http.StatusBadRequest, "MANIFEST_INVALID", fmt.Sprintf(
					"Invalid parameter at 'imageManifest': manifests[%d] has media type '%s', which is not an image manifest or index", i, d.MediaType)}
			}
		}
	case ociManifest, dockerManifest:
		// An empty cache image has no layers (moby/buildkit#4331).
		if len(m.Layers) == 0 {
			return &registryError{http.StatusBadRequest, "MANIFEST_INVALID",
				"Invalid parameter at 'imageManifest': an image manifest needs at least one layer"}
		}
	}
	return nil
}
