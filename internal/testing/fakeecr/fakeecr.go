// Package fakeecr is an Amazon ECR test double for tests, the demo and
// benchmarks.
//
// It runs two loopback HTTP servers:
//
//   - an ECR API endpoint speaking the AWS JSON 1.1 protocol exactly as the
//     AWS SDK for Go v2 sends it (GetAuthorizationToken, DescribeRepositories,
//     ListImages, DescribeImages and BatchDeleteImage), so a client built
//     with config.WithBaseEndpoint talks to it unchanged; the images are
//     the registry's, with the push and pull times ECR records;
//   - a registry front, a reverse proxy in front of a real OCI registry, that
//     enforces what ECR enforces and plain registries do not: Basic auth with
//     an ECR-issued, expiring password; configured repositories only; no
//     legacy BuildKit cache indexes or empty-layer manifests; immutable tags.
//
// Nothing here talks to AWS. Typical use:
//
//	s, err := fakeecr.Start(fakeecr.Config{
//		Upstream:     "http://127.0.0.1:5000",
//		Repositories: []fakeecr.Repository{{Name: "app"}},
//	})
//	...
//	cfg, err := config.LoadDefaultConfig(ctx,
//		config.WithRegion(fakeecr.DefaultRegion),
//		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(fakeecr.DefaultAccessKeyID, "any", "")),
//		config.WithBaseEndpoint(s.APIURL))
//	client := ecr.NewFromConfig(cfg) // images go to s.RegistryHost + "/app:tag"
package fakeecr

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Defaults used when the matching Config field is empty.
const (
	DefaultAccountID   = "123456789012"
	DefaultRegion      = "us-east-1"
	DefaultAccessKeyID = "AKIDFAKEECR"
	DefaultTokenTTL    = 12 * time.Hour
)

// Image tag mutability settings, as DescribeRepositories reports them
// (types.ImageTagMutability in the SDK).
const (
	Mutable                = "MUTABLE"
	Immutable              = "IMMUTABLE"
	ImmutableWithExclusion = "IMMUTABLE_WITH_EXCLUSION"
	MutableWithExclusion   = "MUTABLE_WITH_EXCLUSION"
)

// Repository is one ECR repository.
type Repository struct {
	Name string
	// Mutability is one of Mutable (the default when empty), Immutable,
	// ImmutableWithExclusion or MutableWithExclusion.
	Mutability string
	// ExclusionFilters are WILDCARD filters ("*" matches any run of
	// characters) naming the tags that are exceptions to Mutability. ECR
	// accepts them only with the *_WITH_EXCLUSION settings.
	ExclusionFilters []string
}

// Config configures the double. Zero fields take the defaults above.
type Config struct {
	// Upstream is the base URL of the real registry behind the front,
	// e.g. "http://127.0.0.1:5000".
	Upstream    string
	AccountID   string
	Region      string
	AccessKeyID string // the only access key the API accepts
	TokenTTL    time.Duration
	// Repositories are the only repositories that exist.
	Repositories []Repository
	// DenyToken, DenyDescribe (DescribeRepositories), DenyDescribeImages and
	// DenyDelete (BatchDeleteImage) make the operation fail with
	// AccessDeniedException, as for a principal without the IAM permission.
	DenyToken, DenyDescribe, DenyDescribeImages, DenyDelete bool
	// Wrap, when set, wraps both servers' handlers, e.g. to inject faults.
	// API requests are POST / with an X-Amz-Target header; registry requests
	// have paths under /v2/.
	Wrap func(http.Handler) http.Handler
}

// Server is a running double. Close it when done.
type Server struct {
	// APIURL is the ECR API endpoint, for config.WithBaseEndpoint.
	APIURL string
	// RegistryURL is the registry front, "http://127.0.0.1:PORT"; it is
	// also the proxyEndpoint GetAuthorizationToken returns.
	RegistryURL string
	// RegistryHost is RegistryURL without the scheme, for image references.
	RegistryHost string

	cfg      Config
	repos    map[string]Repository
	created  time.Time
	upstream *url.URL
	servers  []*http.Server

	mu         sync.Mutex
	passwords  map[string]time.Time // issued password -> expiry
	issued     []string             // in issue order, for Passwords
	tokenCalls int

	// tagMu serialises the check-then-put of tags that must not be
	// overwritten, so two racing pushes cannot both win, and deletes.
	tagMu sync.Mutex

	imagesMu sync.Mutex
	images   map[string]map[string]*image // repository -> manifest digest -> record
}

// Start validates cfg and starts both servers on free loopback ports.
func Start(cfg Config) (*Server, error) {
	if cfg.AccountID == "" {
		cfg.AccountID = DefaultAccountID
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.AccessKeyID == "" {
		cfg.AccessKeyID = DefaultAccessKeyID
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	up, err := url.Parse(cfg.Upstream)
	if err != nil || up.Scheme == "" || up.Host == "" {
		return nil, fmt.Errorf("fakeecr: upstream %q is not an absolute URL", cfg.Upstream)
	}
	s := &Server{
		cfg:       cfg,
		repos:     make(map[string]Repository, len(cfg.Repositories)),
		created:   time.Now(),
		upstream:  up,
		passwords: map[string]time.Time{},
		images:    map[string]map[string]*image{},
	}
	for _, r := range cfg.Repositories {
		if err := validateRepository(&r); err != nil {
			return nil, fmt.Errorf("fakeecr: %w", err)
		}
		if _, dup := s.repos[r.Name]; dup {
			return nil, fmt.Errorf("fakeecr: repository %q configured twice", r.Name)
		}
		s.repos[r.Name] = r
	}

	api, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakeecr: listen for the API: %w", err)
	}
	reg, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		api.Close()
		return nil, fmt.Errorf("fakeecr: listen for the registry: %w", err)
	}
	s.APIURL = "http://" + api.Addr().String()
	s.RegistryHost = reg.Addr().String()
	s.RegistryURL = "http://" + s.RegistryHost

	s.serve(api, s.apiHandler())
	s.serve(reg, s.registryHandler())
	return s, nil
}

func (s *Server) serve(l net.Listener, h http.Handler) {
	if s.cfg.Wrap != nil {
		h = s.cfg.Wrap(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.servers = append(s.servers, srv)
	go srv.Serve(l) //nolint:errcheck // Serve returns ErrServerClosed once Close runs; nothing to report
}

func validateRepository(r *Repository) error {
	if r.Name == "" {
		return errors.New("repository with an empty name")
	}
	switch r.Mutability {
	case "":
		r.Mutability = Mutable
	case Mutable, Immutable, ImmutableWithExclusion, MutableWithExclusion:
	default:
		return fmt.Errorf("repository %q: unknown image tag mutability %q", r.Name, r.Mutability)
	}
	withExclusion := r.Mutability == ImmutableWithExclusion || r.Mutability == MutableWithExclusion
	if withExclusion != (len(r.ExclusionFilters) > 0) {
		return fmt.Errorf("repository %q: exclusion filters go with, and only with, %s or %s",
			r.Name, ImmutableWithExclusion, MutableWithExclusion)
	}
	return nil
}

// Close stops both servers.
func (s *Server) Close() error {
	var errs []error
	for _, srv := range s.servers {
		if err := srv.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fakeecr: close: %w", err)
	}
	return nil
}

// Passwords returns every registry password issued so far, oldest first, so
// tests can assert none of them leaked into logs or files.
func (s *Server) Passwords() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.issued...)
}

// TokenCalls counts GetAuthorizationToken calls, including denied ones.
func (s *Server) TokenCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenCalls
}

// ExpireTokens makes every password issued so far expired, as if TokenTTL
// had passed, to test that clients log in again.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := time.Now().Add(-time.Second)
	for pw := range s.passwords {
		s.passwords[pw] = past
	}
}

// issuePassword records a new random password and returns it with its expiry.
func (s *Server) issuePassword() (string, time.Time) {
	b := make([]byte, 48)
	rand.Read(b) // never fails (crypto/rand)
	pw := base64.RawURLEncoding.EncodeToString(b)
	exp := time.Now().Add(s.cfg.TokenTTL)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.passwords[pw] = exp
	s.issued = append(s.issued, pw)
	return pw, exp
}

// passwordState reports whether pw was issued here and whether it expired.
func (s *Server) passwordState(pw string) (known, expired bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.passwords[pw]
	return ok, ok && !time.Now().Before(exp)
}

// tagMutable tells whether ECR would let a push overwrite tag in r.
func tagMutable(r Repository, tag string) bool {
	excluded := false
	for _, f := range r.ExclusionFilters {
		if wildcardMatch(f, tag) {
			excluded = true
			break
		}
	}
	switch r.Mutability {
	case Immutable:
		return false
	case ImmutableWithExclusion:
		return excluded
	case MutableWithExclusion:
		return !excluded
	default:
		return true
	}
}

// wildcardMatch matches s against an ECR WILDCARD filter, where "*" matches
// any run of characters and everything else is literal.
func wildcardMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}
