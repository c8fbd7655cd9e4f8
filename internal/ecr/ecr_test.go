package ecr

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsecr "github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/fakeecr"
)

func TestParseHost(t *testing.T) {
	t.Parallel()
	for host, want := range map[string][2]string{
		"123456789012.dkr.ecr.us-east-1.amazonaws.com":          {"123456789012", "us-east-1"},
		"123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com": {"123456789012", "us-gov-west-1"},
		"123456789012.dkr-ecr.eu-west-1.on.aws":                 {"123456789012", "eu-west-1"},
		"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn":      {"123456789012", "cn-north-1"},
		"ghcr.io":                               {},
		"12345.dkr.ecr.us-east-1.amazonaws.com": {},
		"123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.io": {},
		"127.0.0.1:5000": {},
	} {
		acct, region, ok := ParseHost(host)
		if ok != (want[0] != "") || acct != want[0] || region != want[1] {
			t.Errorf("ParseHost(%q) = %q, %q, %v; want %q", host, acct, region, ok, want)
		}
	}
}

// double starts the ECR double in front of an in-memory registry and returns a
// Client for it, built through LoadConfig as the action builds it.
func double(t *testing.T, cfg fakeecr.Config) (*fakeecr.Server, *Client, *[]string) {
	t.Helper()
	up := httptest.NewServer(registry.New())
	t.Cleanup(up.Close)
	cfg.Upstream = up.URL
	s, err := fakeecr.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	awsCfg, err := LoadConfig(context.Background(), fakeecr.DefaultRegion,
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(fakeecr.DefaultAccessKeyID, "secret", "")),
		config.WithBaseEndpoint(s.APIURL))
	if err != nil {
		t.Fatal(err)
	}
	var masked []string
	return s, NewFromConfig(awsCfg, func(v string) { masked = append(masked, v) }, func(w string) { t.Errorf("unexpected warning: %s", w) }), &masked
}

// failingAPI fails GetAuthorizationToken while fail is set, like a throttled or
// briefly unreachable ECR.
type failingAPI struct {
	API
	fail bool
}

func (f *failingAPI) GetAuthorizationToken(ctx context.Context, in *awsecr.GetAuthorizationTokenInput, opts ...func(*awsecr.Options)) (*awsecr.GetAuthorizationTokenOutput, error) {
	if f.fail {
		return nil, errors.New("ThrottlingException: rate exceeded")
	}
	return f.API.GetAuthorizationToken(ctx, in, opts...)
}

// A failed refresh keeps the token that still works, with a warning, as
// amazon-ecr-credential-helper does; once it has expired the error stands.
func TestFailedRefreshKeepsTheValidToken(t *testing.T) {
	t.Parallel()
	s, _, _ := double(t, fakeecr.Config{TokenTTL: time.Hour})
	awsCfg, err := LoadConfig(context.Background(), fakeecr.DefaultRegion,
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(fakeecr.DefaultAccessKeyID, "secret", "")),
		config.WithBaseEndpoint(s.APIURL))
	if err != nil {
		t.Fatal(err)
	}
	api := &failingAPI{API: awsecr.NewFromConfig(awsCfg)}
	var warnings []string
	c := New(api, func(string) {}, func(w string) { warnings = append(warnings, w) })
	now := time.Now()
	c.now = func() time.Time { return now }
	tok, err := c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	api.fail = true
	now = tok.ExpiresAt.Add(-RefreshBefore + time.Minute) // due for refresh, still valid
	got, err := c.Token(context.Background())
	if err != nil || got.Password != tok.Password {
		t.Fatalf("refresh failure within validity: %v; want the current token", err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "could not refresh the ECR token") || strings.Contains(warnings[0], tok.Password) {
		t.Errorf("warnings %q; want one saying the current token is used", warnings)
	}
	now = tok.ExpiresAt.Add(time.Second)
	if _, err := c.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "ThrottlingException") {
		t.Errorf("refresh failure after expiry: %v; want the error", err)
	}
}

func TestTokenIsMaskedCachedAndRefreshedBeforeExpiry(t *testing.T) {
	t.Parallel()
	s, c, masked := double(t, fakeecr.Config{TokenTTL: time.Hour})
	now := time.Now()
	c.now = func() time.Time { return now }

	tok, err := c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tok.Username != "AWS" || tok.Registry != s.RegistryHost || !tok.Insecure || tok.Password != s.Passwords()[0] {
		t.Fatalf("token %+v; registry %s", tok, s.RegistryHost)
	}
	if !slices.Contains(*masked, tok.Password) || len(*masked) != 2 {
		t.Errorf("masked %d values; want the raw token and the password", len(*masked))
	}
	if _, err := c.Token(context.Background()); err != nil || s.TokenCalls() != 1 {
		t.Fatalf("a fresh token must be reused: %d calls, %v", s.TokenCalls(), err)
	}

	// Within RefreshBefore of expiry a new token is fetched, and the registry
	// takes the new password once the old one has expired.
	now = tok.ExpiresAt.Add(-RefreshBefore + time.Minute)
	s.ExpireTokens()
	fresh, err := c.Token(context.Background())
	if err != nil || s.TokenCalls() != 2 || fresh.Password == tok.Password {
		t.Fatalf("refresh: %d calls, same password %v, %v", s.TokenCalls(), fresh.Password == tok.Password, err)
	}
	for pw, want := range map[string]int{tok.Password: http.StatusUnauthorized, fresh.Password: http.StatusOK} {
		req, _ := http.NewRequest(http.MethodGet, s.RegistryURL+"/v2/", nil)
		req.SetBasicAuth("AWS", pw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("registry answered %d, want %d", resp.StatusCode, want)
		}
	}
}

func TestCheckTagOverwrite(t *testing.T) {
	t.Parallel()
	_, c, _ := double(t, fakeecr.Config{Repositories: []fakeecr.Repository{
		{Name: "mutable"},
		{Name: "immutable", Mutability: fakeecr.Immutable},
		{Name: "excluded", Mutability: fakeecr.ImmutableWithExclusion, ExclusionFilters: []string{"cache-*"}},
		{Name: "mutable-but-cache", Mutability: fakeecr.MutableWithExclusion, ExclusionFilters: []string{"cache-*"}},
	}})
	for _, tc := range []struct {
		repo, tag string
		wantErr   string
	}{
		{"mutable", "cache-main-1", ""},
		{"immutable", "cache-main-1", "immutable tags (IMMUTABLE)"},
		{"excluded", "cache-main-1", ""},
		{"excluded", "build-main-1", "IMMUTABLE_WITH_EXCLUSION"},
		{"mutable-but-cache", "cache-main-1", "MUTABLE_WITH_EXCLUSION"},
		{"mutable-but-cache", "other", ""},
		{"missing", "cache-main-1", "does not exist"},
	} {
		err := c.CheckTagOverwrite(context.Background(), "", tc.repo, tc.tag)
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s:%s: err = %v, want %q", tc.repo, tc.tag, err, tc.wantErr)
		}
		if err != nil && tc.repo != "missing" && !strings.Contains(err.Error(), "filter='cache-*'") {
			t.Errorf("%s: the error should name the fix: %v", tc.repo, err)
		}
	}
}

func TestDeniedCallsSayWhichPermission(t *testing.T) {
	t.Parallel()
	_, c, _ := double(t, fakeecr.Config{DenyToken: true, DenyDescribe: true, DenyDescribeImages: true, DenyDelete: true,
		Repositories: []fakeecr.Repository{{Name: "app"}}})
	_, err := c.Token(context.Background())
	if err == nil || !strings.Contains(err.Error(), "ecr:GetAuthorizationToken") {
		t.Errorf("token: %v", err)
	}
	err = c.CheckTagOverwrite(context.Background(), "", "app", "cache-x")
	if !errors.Is(err, ErrNoPermission) || !strings.Contains(err.Error(), "ecr:DescribeRepositories") {
		t.Errorf("describe: %v", err)
	}
	_, err = c.PushedAt(context.Background(), "", "app", "cache-x")
	if !errors.Is(err, ErrNoPermission) || !strings.Contains(err.Error(), "ecr:DescribeImages") {
		t.Errorf("describe images: %v", err)
	}
	_, _, err = c.DeleteTags(context.Background(), "", "app", []string{"cache-x"})
	if !errors.Is(err, ErrNoPermission) || !strings.Contains(err.Error(), "ecr:BatchDeleteImage") {
		t.Errorf("delete: %v", err)
	}
}

func TestMatchesAny(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		filter, tag string
		want        bool
	}{
		{"cache-*", "cache-main-abc", true},
		{"cache-*", "main-cache-abc", false},
		{"*-cache", "x-cache", true},
		{"v1.[0]", "v1.[0]", true},
		{"v1.?", "v1.2", false},
	} {
		if got := matchesAny([]string{tc.filter}, tc.tag); got != tc.want {
			t.Errorf("matchesAny(%q, %q) = %v", tc.filter, tc.tag, got)
		}
	}
}
