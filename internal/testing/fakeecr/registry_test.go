package fakeecr_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	ggcrtypes "github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/fakeecr"
)

// stack is a double in front of an in-memory registry.
type stack struct {
	*fakeecr.Server
	upstream string // URL of the registry behind the front

	mu        sync.Mutex
	seen      []string // "METHOD path" of every request the front served
	leakedPWs []string // Authorization headers that reached the upstream
}

// startStack starts an in-memory registry that, like distribution, makes
// upload Locations absolute from the request Host, and a double in front of
// it whose Wrap hook records what went through the front.
func startStack(t *testing.T, repos ...fakeecr.Repository) *stack {
	t.Helper()
	st := &stack{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "" {
			st.mu.Lock()
			st.leakedPWs = append(st.leakedPWs, a)
			st.mu.Unlock()
		}
		reg.ServeHTTP(absoluteLocation{w, r.Host}, r)
	}))
	t.Cleanup(up.Close)
	st.upstream = up.URL
	st.Server = start(t, fakeecr.Config{
		Upstream:     up.URL,
		Repositories: repos,
		Wrap: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				st.mu.Lock()
				st.seen = append(st.seen, r.Method+" "+r.URL.Path)
				st.mu.Unlock()
				h.ServeHTTP(w, r)
			})
		},
	})
	return st
}

type absoluteLocation struct {
	http.ResponseWriter
	host string
}

func (a absoluteLocation) WriteHeader(code int) {
	if loc := a.Header().Get("Location"); strings.HasPrefix(loc, "/") {
		a.Header().Set("Location", "http://"+a.host+loc)
	}
	a.ResponseWriter.WriteHeader(code)
}

func (st *stack) ref(t *testing.T, repoTag string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(st.RegistryHost+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func awsAuth(pw string) remote.Option {
	return remote.WithAuth(&authn.Basic{Username: "AWS", Password: pw})
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// wantRegistryError checks err is a registry error with this status and code.
func wantRegistryError(t *testing.T, err error, status int, code transport.ErrorCode) *transport.Error {
	t.Helper()
	var terr *transport.Error
	if !errors.As(err, &terr) {
		t.Fatalf("err = %v, want a registry error %d %s", err, status, code)
	}
	if terr.StatusCode != status {
		t.Errorf("status = %d, want %d (%v)", terr.StatusCode, status, err)
	}
	if code != "" && (len(terr.Errors) == 0 || terr.Errors[0].Code != code) {
		t.Errorf("errors = %+v, want code %s", terr.Errors, code)
	}
	return terr
}

func TestPushThroughFront(t *testing.T) {
	t.Parallel()
	st := startStack(t, fakeecr.Repository{Name: "team/app"})
	pw := login(t, st.Server)

	img := randomImage(t)
	if err := remote.Write(st.ref(t, "team/app:v1"), img, awsAuth(pw)); err != nil {
		t.Fatalf("push image: %v", err)
	}
	got, err := remote.Get(st.ref(t, "team/app:v1"), awsAuth(pw))
	if err != nil {
		t.Fatalf("pull back: %v", err)
	}
	if want, _ := img.Digest(); got.Digest != want {
		t.Errorf("digest = %s, want %s", got.Digest, want)
	}
	idx, err := random.Index(256, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(st.ref(t, "team/app:multi"), idx, awsAuth(pw)); err != nil {
		t.Errorf("push a valid index: %v", err)
	}

	st.mu.Lock()
	defer st.mu.Unlock()
	// Upload sessions (PATCH/PUT .../blobs/uploads/<id>) follow the
	// upstream's absolute Location: they must come back to the front.
	uploads := 0
	for _, r := range st.seen {
		if strings.Contains(r, "/v2/team/app/blobs/uploads/") && !strings.HasPrefix(r, "POST ") {
			uploads++
		}
	}
	if uploads == 0 {
		t.Errorf("no blob upload went through the front; saw %q", st.seen)
	}
	if len(st.leakedPWs) != 0 {
		t.Errorf("upstream received Authorization headers: %q", st.leakedPWs)
	}
}

func TestRegistryAuth(t *testing.T) {
	t.Parallel()
	st := startStack(t, fakeecr.Repository{Name: "app"})
	pw := login(t, st.Server)
	if err := remote.Write(st.ref(t, "app:v1"), randomImage(t), awsAuth(pw)); err != nil {
		t.Fatalf("push: %v", err)
	}

	err := remote.Write(st.ref(t, "app:v2"), randomImage(t), remote.WithAuth(authn.Anonymous))
	wantRegistryError(t, err, http.StatusUnauthorized, "")
	err = remote.Write(st.ref(t, "app:v2"), randomImage(t), awsAuth("not-issued"))
	wantRegistryError(t, err, http.StatusUnauthorized, "")

	basic := func(user, pw string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
	}
	get := func(authorization string) (int, string, string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, st.RegistryURL+"/v2/app/tags/list", nil)
		if err != nil {
			t.Fatal(err)
		}
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Errors []struct{ Code string } }
		if resp.StatusCode != http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Errors) == 0 {
				t.Fatalf("status %d with undecodable errors body: %v", resp.StatusCode, err)
			}
			return resp.StatusCode, body.Errors[0].Code, resp.Header.Get("WWW-Authenticate")
		}
		return resp.StatusCode, "", ""
	}
	challenge := fmt.Sprintf(`Basic realm="https://%s/",service="ecr.amazonaws.com"`, st.RegistryHost)
	for _, tc := range []struct {
		name, authorization string
		status              int
		code                string
	}{
		{"valid", basic("AWS", pw), http.StatusOK, ""},
		{"none", "", http.StatusUnauthorized, "UNAUTHORIZED"},
		{"wrong user", basic("admin", pw), http.StatusUnauthorized, "DENIED"},
		{"wrong password", basic("AWS", pw+"x"), http.StatusUnauthorized, "DENIED"},
		{"bearer", "Bearer " + pw, http.StatusUnauthorized, "UNAUTHORIZED"},
	} {
		status, code, wwwAuth := get(tc.authorization)
		if status != tc.status || code != tc.code {
			t.Errorf("%s: got %d %q, want %d %q", tc.name, status, code, tc.status, tc.code)
		}
		if status == http.StatusUnauthorized && wwwAuth != challenge {
			t.Errorf("%s: WWW-Authenticate = %q, want %q", tc.name, wwwAuth, challenge)
		}
	}

	st.ExpireTokens()
	if status, code, _ := get(basic("AWS", pw)); status != http.StatusUnauthorized || code != "DENIED" {
		t.Errorf("expired token: got %d %q, want 401 DENIED", status, code)
	}
	err = remote.Write(st.ref(t, "app:v3"), randomImage(t), awsAuth(pw))
	wantRegistryError(t, err, http.StatusUnauthorized, "")

	// Logging in again is how clients recover.
	if err := remote.Write(st.ref(t, "app:v3"), randomImage(t), awsAuth(login(t, st.Server))); err != nil {
		t.Errorf("push after a fresh login: %v", err)
	}
}

func TestUnknownRepository(t *testing.T) {
	t.Parallel()
	st := startStack(t, fakeecr.Repository{Name: "app"})
	pw := login(t, st.Server)
	_, err := remote.Get(st.ref(t, "other:v1"), awsAuth(pw))
	terr := wantRegistryError(t, err, http.StatusNotFound, transport.NameUnknownErrorCode)
	if len(terr.Errors) > 0 && !strings.Contains(terr.Errors[0].Message, "'other' does not exist in the registry with id '123456789012'") {
		t.Errorf("message = %q", terr.Errors[0].Message)
	}
	err = remote.Write(st.ref(t, "other:v1"), randomImage(t), awsAuth(pw))
	wantRegistryError(t, err, http.StatusNotFound, "")
}

// rawManifest is a hand-built manifest for remote.Put.
type rawManifest struct {
	body      []byte
	mediaType ggcrtypes.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)            { return m.body, nil }
func (m rawManifest) MediaType() (ggcrtypes.MediaType, error) { return m.mediaType, nil }

func descriptorJSON(mediaType string, n int) string {
	return fmt.Sprintf(`{"mediaType":%q,"digest":"sha256:%064x","size":%d}`, mediaType, n, 100+n)
}

func TestManifestValidation(t *testing.T) {
	t.Parallel()
	st := startStack(t, fakeecr.Repository{Name: "app"})
	pw := login(t, st.Server)

	// The pre-image-manifest BuildKit cache: an index listing layers and
	// the cache config directly (aws/containers-roadmap#876).
	legacyCache := rawManifest{mediaType: ggcrtypes.OCIImageIndex, body: []byte(`{"schemaVersion":2,` +
		`"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
		descriptorJSON("application/vnd.oci.image.layer.v1.tar+gzip", 1) + "," +
		descriptorJSON("application/vnd.buildkit.cacheconfig.v0", 2) + `]}`)}
	dockerLegacyCache := rawManifest{mediaType: ggcrtypes.DockerManifestList, body: []byte(`{"schemaVersion":2,` +
		`"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[` +
		descriptorJSON("application/vnd.docker.image.rootfs.diff.tar.gzip", 1) + `]}`)}
	// A cache image manifest for an empty build (moby/buildkit#4331).
	noLayers := rawManifest{mediaType: ggcrtypes.OCIManifestSchema1, body: []byte(`{"schemaVersion":2,` +
		`"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` +
		descriptorJSON("application/vnd.buildkit.cacheconfig.v0", 3) + `,"layers":[]}`)}

	for _, tc := range []struct {
		name string
		m    rawManifest
	}{{"legacy OCI cache index", legacyCache}, {"legacy docker cache list", dockerLegacyCache}, {"no layers", noLayers}} {
		err := remote.Put(st.ref(t, "app:cache"), tc.m, awsAuth(pw))
		terr := wantRegistryError(t, err, http.StatusBadRequest, transport.ManifestInvalidErrorCode)
		if len(terr.Errors) > 0 && terr.Errors[0].Message == "" {
			t.Errorf("%s: empty error message", tc.name)
		}
		// The plain registry behind the front takes it: the double is
		// what rejects it.
		direct, err := name.ParseReference(strings.TrimPrefix(st.upstream, "http://")+"/app:direct", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Put(direct, tc.m); err != nil {
			t.Errorf("%s: upstream rejected it too: %v", tc.name, err)
		}
	}
}

func TestTagMutability(t *testing.T) {
	t.Parallel()
	st := startStack(t,
		fakeecr.Repository{Name: "mutable"},
		fakeecr.Repository{Name: "immutable", Mutability: fakeecr.Immutable},
		fakeecr.Repository{Name: "imm-excl", Mutability: fakeecr.ImmutableWithExclusion, ExclusionFilters: []string{"cache-*"}},
		fakeecr.Repository{Name: "mut-excl", Mutability: fakeecr.MutableWithExclusion, ExclusionFilters: []string{"release-*"}},
	)
	pw := login(t, st.Server)
	for _, tc := range []struct {
		repoTag      string
		overwritable bool
	}{
		{"mutable:latest", true},
		{"immutable:v1", false},
		{"imm-excl:cache-x", true},
		{"imm-excl:v1", false},
		{"mut-excl:latest", true},
		{"mut-excl:release-1", false},
	} {
		ref := st.ref(t, tc.repoTag)
		first := randomImage(t)
		if err := remote.Write(ref, first, awsAuth(pw)); err != nil {
			t.Fatalf("%s: first push: %v", tc.repoTag, err)
		}
		err := remote.Write(ref, randomImage(t), awsAuth(pw))
		if tc.overwritable {
			if err != nil {
				t.Errorf("%s: overwrite refused: %v", tc.repoTag, err)
			}
			continue
		}
		terr := wantRegistryError(t, err, http.StatusBadRequest, transport.TagInvalidErrorCode)
		repo, tag, _ := strings.Cut(tc.repoTag, ":")
		want := fmt.Sprintf("The image tag '%s' already exists in the '%s' repository and cannot be overwritten because the repository is immutable.", tag, repo)
		if len(terr.Errors) > 0 && terr.Errors[0].Message != want {
			t.Errorf("%s: message = %q, want %q", tc.repoTag, terr.Errors[0].Message, want)
		}
		// ECR refuses even the same manifest again (moby/buildkit#3776);
		// Put skips the existence check Write does.
		err = remote.Put(ref, first, awsAuth(pw))
		wantRegistryError(t, err, http.StatusBadRequest, transport.TagInvalidErrorCode)
		// The tag still names the first image.
		got, err := remote.Head(ref, awsAuth(pw))
		if err != nil {
			t.Fatalf("%s: head: %v", tc.repoTag, err)
		}
		if want, _ := first.Digest(); got.Digest != want {
			t.Errorf("%s: tag moved to %s, want %s", tc.repoTag, got.Digest, want)
		}
	}
}
