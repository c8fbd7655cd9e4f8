package fakeecr_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/fakeecr"
)

// start runs a double for the test's lifetime.
func start(t *testing.T, cfg fakeecr.Config) *fakeecr.Server {
	t.Helper()
	if cfg.Upstream == "" {
		cfg.Upstream = "http://127.0.0.1:1" // API-only tests never reach it
	}
	s, err := fakeecr.Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// client is a real SDK client pointed at the double, configured only through
// options so tests never touch the process environment.
func client(t *testing.T, s *fakeecr.Server, accessKey, region string) *ecr.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(t.Context(),
		config.WithRegion(region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(accessKey, "fake-secret", "")),
		config.WithBaseEndpoint(s.APIURL),
	)
	if err != nil {
		t.Fatalf("LoadDefaultConfig: %v", err)
	}
	return ecr.NewFromConfig(cfg)
}

// login gets a registry password through the SDK, as the action does.
func login(t *testing.T, s *fakeecr.Server) string {
	t.Helper()
	out, err := client(t, s, fakeecr.DefaultAccessKeyID, fakeecr.DefaultRegion).
		GetAuthorizationToken(t.Context(), &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		t.Fatalf("GetAuthorizationToken: %v", err)
	}
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(out.AuthorizationData[0].AuthorizationToken))
	if err != nil {
		t.Fatalf("decode token: %v", err)
	}
	pw, ok := strings.CutPrefix(string(raw), "AWS:")
	if !ok {
		t.Fatalf("token %q does not start with AWS:", raw)
	}
	return pw
}

func TestGetAuthorizationToken(t *testing.T) {
	t.Parallel()
	s := start(t, fakeecr.Config{TokenTTL: time.Hour})
	before := time.Now()
	out, err := client(t, s, fakeecr.DefaultAccessKeyID, fakeecr.DefaultRegion).
		GetAuthorizationToken(t.Context(), &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		t.Fatalf("GetAuthorizationToken: %v", err)
	}
	if len(out.AuthorizationData) != 1 {
		t.Fatalf("got %d authorizationData, want 1", len(out.AuthorizationData))
	}
	d := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(d.AuthorizationToken))
	if err != nil {
		t.Fatalf("token is not base64: %v", err)
	}
	pw, ok := strings.CutPrefix(string(raw), "AWS:")
	if !ok || pw == "" {
		t.Fatalf("token decodes to %q, want AWS:<password>", raw)
	}
	if got := s.Passwords(); !slices.Equal(got, []string{pw}) {
		t.Errorf("Passwords() = %q, want [%q]", got, pw)
	}
	if got := aws.ToString(d.ProxyEndpoint); got != s.RegistryURL {
		t.Errorf("ProxyEndpoint = %q, want %q", got, s.RegistryURL)
	}
	if d.ExpiresAt == nil {
		t.Fatal("ExpiresAt is nil")
	}
	lo, hi := before.Add(time.Hour-time.Second), time.Now().Add(time.Hour+time.Second)
	if d.ExpiresAt.Before(lo) || d.ExpiresAt.After(hi) {
		t.Errorf("ExpiresAt = %v, want within [%v, %v]", d.ExpiresAt, lo, hi)
	}
	if n := s.TokenCalls(); n != 1 {
		t.Errorf("TokenCalls() = %d, want 1", n)
	}
	if pw2 := login(t, s); pw2 == pw {
		t.Error("second login returned the same password")
	}
}

func TestDescribeRepositories(t *testing.T) {
	t.Parallel()
	s := start(t, fakeecr.Config{Repositories: []fakeecr.Repository{
		{Name: "team/app"},
		{Name: "cache", Mutability: fakeecr.ImmutableWithExclusion, ExclusionFilters: []string{"cache-*"}},
	}})
	c := client(t, s, fakeecr.DefaultAccessKeyID, fakeecr.DefaultRegion)

	out, err := c.DescribeRepositories(t.Context(), &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"cache"}})
	if err != nil {
		t.Fatalf("DescribeRepositories: %v", err)
	}
	if len(out.Repositories) != 1 {
		t.Fatalf("got %d repositories, want 1", len(out.Repositories))
	}
	r := out.Repositories[0]
	if r.ImageTagMutability != types.ImageTagMutabilityImmutableWithExclusion {
		t.Errorf("ImageTagMutability = %q", r.ImageTagMutability)
	}
	if f := r.ImageTagMutabilityExclusionFilters; len(f) != 1 ||
		aws.ToString(f[0].Filter) != "cache-*" || f[0].FilterType != types.ImageTagMutabilityExclusionFilterTypeWildcard {
		t.Errorf("ImageTagMutabilityExclusionFilters = %+v, want one WILDCARD cache-*", f)
	}
	for _, c := range []struct{ field, got, want string }{
		{"RepositoryName", aws.ToString(r.RepositoryName), "cache"},
		{"RepositoryUri", aws.ToString(r.RepositoryUri), s.RegistryHost + "/cache"},
		{"RegistryId", aws.ToString(r.RegistryId), fakeecr.DefaultAccountID},
		{"RepositoryArn", aws.ToString(r.RepositoryArn), "arn:aws:ecr:us-east-1:123456789012:repository/cache"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}
	if r.CreatedAt == nil || time.Since(*r.CreatedAt) > time.Minute {
		t.Errorf("CreatedAt = %v, want about now", r.CreatedAt)
	}

	all, err := c.DescribeRepositories(t.Context(), &ecr.DescribeRepositoriesInput{})
	if err != nil {
		t.Fatalf("DescribeRepositories (all): %v", err)
	}
	var names []string
	for _, r := range all.Repositories {
		names = append(names, aws.ToString(r.RepositoryName))
		if aws.ToString(r.RepositoryName) == "team/app" && r.ImageTagMutability != types.ImageTagMutabilityMutable {
			t.Errorf("team/app mutability = %q, want MUTABLE", r.ImageTagMutability)
		}
	}
	if !slices.Equal(names, []string{"cache", "team/app"}) {
		t.Errorf("all repositories = %q", names)
	}
}

func TestDescribeRepositoriesNotFound(t *testing.T) {
	t.Parallel()
	s := start(t, fakeecr.Config{Repositories: []fakeecr.Repository{{Name: "app"}}})
	_, err := client(t, s, fakeecr.DefaultAccessKeyID, fakeecr.DefaultRegion).
		DescribeRepositories(t.Context(), &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"app", "nope"}})
	var nf *types.RepositoryNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("err = %v, want RepositoryNotFoundException", err)
	}
	want := "The repository with name 'nope' does not exist in the registry with id '123456789012'"
	if nf.ErrorMessage() != want {
		t.Errorf("message = %q, want %q", nf.ErrorMessage(), want)
	}
}

func TestAPIErrors(t *testing.T) {
	t.Parallel()
	tokenCall := func(c *ecr.Client, ctx context.Context) error {
		_, err := c.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
		return err
	}
	describeCall := func(c *ecr.Client, ctx context.Context) error {
		_, err := c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"app"}})
		return err
	}
	for _, tc := range []struct {
		name              string
		cfg               fakeecr.Config
		accessKey, region string
		call              func(*ecr.Client, context.Context) error
		wantCode          string
	}{
		{"token denied", fakeecr.Config{DenyToken: true}, fakeecr.DefaultAccessKeyID, fakeecr.DefaultRegion, tokenCall, "AccessDeniedException"},
		{"describe denied", fakeecr.Config{DenyDescribe: true}, fakeecr.DefaultAccessKeyID, fakeecr.DefaultRegion, describeCall, "AccessDeniedException"},
		{"wrong access key", fakeecr.Config{}, "AKIDSOMEONEELSE", fakeecr.DefaultRegion, tokenCall, "UnrecognizedClientException"},
		{"wrong region", fakeecr.Config{}, fakeecr.DefaultAccessKeyID, "eu-west-1", describeCall, "InvalidSignatureException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.cfg.Repositories = []fakeecr.Repository{{Name: "app"}}
			s := start(t, tc.cfg)
			err := tc.call(client(t, s, tc.accessKey, tc.region), t.Context())
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v, want an API error", err)
			}
			if apiErr.ErrorCode() != tc.wantCode {
				t.Errorf("ErrorCode() = %q, want %q (%v)", apiErr.ErrorCode(), tc.wantCode, err)
			}
			if len(s.Passwords()) != 0 {
				t.Errorf("a password was issued: %d", len(s.Passwords()))
			}
		})
	}
}

// TestUnsignedRequest covers what the SDK never sends: a call without SigV4.
func TestUnsignedRequest(t *testing.T) {
	t.Parallel()
	s := start(t, fakeecr.Config{})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.APIURL+"/", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Type string `json:"__type"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode error body: %v", err)
	}
	if resp.StatusCode != http.StatusBadRequest || body.Type != "MissingAuthenticationTokenException" {
		t.Errorf("got %d %q, want 400 MissingAuthenticationTokenException", resp.StatusCode, body.Type)
	}
	if s.TokenCalls() != 0 {
		t.Errorf("TokenCalls() = %d, want 0", s.TokenCalls())
	}
}

func TestStartRejectsBadRepositories(t *testing.T) {
	t.Parallel()
	for _, r := range []fakeecr.Repository{
		{Name: ""},
		{Name: "a", Mutability: "SOMETIMES"},
		{Name: "a", Mutability: fakeecr.Immutable, ExclusionFilters: []string{"x*"}},
		{Name: "a", Mutability: fakeecr.ImmutableWithExclusion},
	} {
		s, err := fakeecr.Start(fakeecr.Config{Upstream: "http://127.0.0.1:1", Repositories: []fakeecr.Repository{r}})
		if err == nil {
			s.Close()
			t.Errorf("Start accepted %+v", r)
		}
	}
}
