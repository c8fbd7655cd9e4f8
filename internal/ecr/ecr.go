// Package ecr logs in to Amazon ECR with the AWS SDK v2: it turns an
// authorization token into registry credentials kept in memory (refreshed before
// they expire), checks that the cache repository lets tags be overwritten, and
// lists, dates and deletes cache tags.
package ecr

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	awsecr "github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ecr-build-cache/ecr-build-cache/internal/registryauth"
	"github.com/ecr-build-cache/ecr-build-cache/internal/retryafter"
)

// API is the part of the ECR client the action uses.
type API interface {
	GetAuthorizationToken(ctx context.Context, in *awsecr.GetAuthorizationTokenInput, optFns ...func(*awsecr.Options)) (*awsecr.GetAuthorizationTokenOutput, error)
	DescribeRepositories(ctx context.Context, in *awsecr.DescribeRepositoriesInput, optFns ...func(*awsecr.Options)) (*awsecr.DescribeRepositoriesOutput, error)
	ListImages(ctx context.Context, in *awsecr.ListImagesInput, optFns ...func(*awsecr.Options)) (*awsecr.ListImagesOutput, error)
	DescribeImages(ctx context.Context, in *awsecr.DescribeImagesInput, optFns ...func(*awsecr.Options)) (*awsecr.DescribeImagesOutput, error)
	BatchDeleteImage(ctx context.Context, in *awsecr.BatchDeleteImageInput, optFns ...func(*awsecr.Options)) (*awsecr.BatchDeleteImageOutput, error)
}

// Standard, FIPS, dual-stack (dkr-ecr.<region>.on.aws) and China registry hosts.
var hostRE = regexp.MustCompile(`^(\d{12})\.dkr[.-]ecr(?:-fips)?\.([a-z0-9-]+)\.(?:amazonaws\.com(?:\.cn)?|on\.aws)$`)

// ParseHost reports whether host is an ECR registry, and its account and region.
func ParseHost(host string) (account, region string, ok bool) {
	m := hostRE.FindStringSubmatch(host)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// RefreshBefore is how long before expiry a token is replaced, so that a long
// build never presents an expired one.
const RefreshBefore = 15 * time.Minute

// Token is a decoded ECR authorization token.
type Token struct {
	Username, Password string
	// Registry is the host of the token's proxy endpoint; Insecure when that is http://.
	Registry  string
	Insecure  bool
	ExpiresAt time.Time
}

// Client hands out ECR credentials, refreshing them near expiry.
type Client struct {
	api  API
	mask func(string)
	warn func(string)
	now  func() time.Time

	mu    sync.Mutex
	token *Token
}

// LoadConfig builds the SDK configuration the way every AWS tool does
// (environment keys, OIDC web identity, profiles, AWS_ENDPOINT_URL_ECR ...),
// with region taking precedence when set.
func LoadConfig(ctx context.Context, region string, optFns ...func(*config.LoadOptions) error) (aws.Config, error) {
	optFns = append([]func(*config.LoadOptions) error{config.WithHTTPClient(httpClient())}, optFns...)
	if region != "" {
		optFns = append([]func(*config.LoadOptions) error{config.WithRegion(region)}, optFns...)
	}
	cfg, err := config.LoadDefaultConfig(ctx, optFns...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, fmt.Errorf("%w: no AWS region; set the aws-region input or AWS_REGION (aws-actions/configure-aws-credentials sets it)", ErrNotConfigured)
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return aws.Config{}, fmt.Errorf("%w: no AWS credentials found; run aws-actions/configure-aws-credentials before this step, "+
			"or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE (%w)", ErrNotConfigured, err)
	}
	return cfg, nil
}

// httpClient bounds each ECR and AWS credential request: the SDK's default
// transport has no response-header timeout, so an endpoint that accepts
// connections and never answers would hold the run forever. ECR's API answers
// in well under a second.
func httpClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 10 * time.Second }).
		WithTransportOptions(func(t *http.Transport) { t.ResponseHeaderTimeout = 10 * time.Second })
}

// ErrNotConfigured means the runner has no AWS region or credentials at all, as
// on a pull request from a fork.
var ErrNotConfigured = errors.New("AWS is not configured")

// New returns a client; mask is called with every secret before it is used, so
// the runner hides it from all later output, and warn with what the user should
// know but need not fail on.
func New(api API, mask, warn func(string)) *Client {
	return &Client{api: api, mask: mask, warn: warn, now: time.Now}
}

// NewFromConfig is New with an SDK client built from cfg, whose retries (the
// SDK's exponential backoff with jitter, for throttling, 429 and 5xx) make
// MaxAttempts attempts unless AWS_MAX_ATTEMPTS says otherwise, and wait for a
// Retry-After header too; every call ends within CallTimeout.
func NewFromConfig(cfg aws.Config, mask, warn func(string)) *Client {
	return New(awsecr.NewFromConfig(cfg, func(o *awsecr.Options) {
		if o.RetryMaxAttempts == 0 {
			o.RetryMaxAttempts = MaxAttempts
		}
		if r, ok := o.Retryer.(aws.RetryerV2); ok {
			o.Retryer = retryer{r}
		}
		o.APIOptions = append(o.APIOptions, callDeadline)
	}), mask, warn)
}

// callDeadline bounds each call (every page of a paginated one), its retries
// included.
func callDeadline(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("CallDeadline",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			ctx, cancel := context.WithTimeout(ctx, CallTimeout)
			defer cancel()
			return next.HandleInitialize(ctx, in)
		}), middleware.Before)
}

// MaxAttempts bounds the attempts of one ECR API call: with the SDK's backoff
// (at most 1, 2, 4, 8 s between attempts on throttling) and Retry-After capped
// at retryafter.Max, a call gives up within a minute; CallTimeout ends it
// whatever the attempts wait for.
const (
	MaxAttempts = 5
	CallTimeout = time.Minute
)

// retryer adds the Retry-After header to the SDK's retry delay; the SDK reads
// only x-amz-retry-after (aws/aws-sdk-go-v2#3400).
type retryer struct{ aws.RetryerV2 }

func (r retryer) RetryDelay(attempt int, err error) (time.Duration, error) {
	d, derr := r.RetryerV2.RetryDelay(attempt, err)
	var re *smithyhttp.ResponseError
	if derr == nil && errors.As(err, &re) && re.Response != nil {
		if wait, ok := retryafter.Parse(re.Response.Header, time.Now()); ok && wait > d {
			d = wait
		}
	}
	return d, derr
}

// Token returns a valid token, fetching a new one when none is cached or the
// cached one expires within RefreshBefore.
func (c *Client) Token(ctx context.Context) (Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != nil && c.now().Add(RefreshBefore).Before(c.token.ExpiresAt) {
		return *c.token, nil
	}
	// RegistryIds is deprecated: one token serves every registry the caller may access.
	out, err := c.api.GetAuthorizationToken(ctx, &awsecr.GetAuthorizationTokenInput{})
	if err != nil {
		err = explain(opGetToken, err)
		// As amazon-ecr-credential-helper does: a token that still works beats a failed build.
		if c.token != nil && c.now().Before(c.token.ExpiresAt) {
			c.warn(fmt.Sprintf("could not refresh the ECR token, using the current one until %s: %v", c.token.ExpiresAt.UTC().Format("15:04 MST"), err))
			return *c.token, nil
		}
		return Token{}, err
	}
	if len(out.AuthorizationData) == 0 {
		return Token{}, errors.New("get ECR authorization token: the response has no authorization data")
	}
	t, err := decode(out.AuthorizationData[0], c.mask)
	if err != nil {
		return Token{}, err
	}
	c.token = &t
	return t, nil
}

func decode(d types.AuthorizationData, mask func(string)) (Token, error) {
	raw := aws.ToString(d.AuthorizationToken)
	mask(raw)
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return Token{}, errors.New("decode ECR authorization token: not base64")
	}
	user, pass, ok := strings.Cut(string(b), ":")
	if !ok {
		return Token{}, errors.New("decode ECR authorization token: not user:password")
	}
	mask(pass)
	u, err := url.Parse(aws.ToString(d.ProxyEndpoint))
	if err != nil || u.Host == "" {
		return Token{}, fmt.Errorf("ECR proxy endpoint %q is not a URL", aws.ToString(d.ProxyEndpoint))
	}
	return Token{
		Username:  user,
		Password:  pass,
		Registry:  u.Host,
		Insecure:  u.Scheme == "http",
		ExpiresAt: aws.ToTime(d.ExpiresAt),
	}, nil
}

// Source is the client as a credential source for registryauth.
func (c *Client) Source() registryauth.Source {
	return func(ctx context.Context) (registryauth.Credentials, error) {
		t, err := c.Token(ctx)
		if err != nil {
			return registryauth.Credentials{}, err
		}
		return registryauth.Credentials{Username: t.Username, Password: t.Password}, nil
	}
}

// ErrNoPermission marks a check the caller's IAM policy does not allow; the run
// warns and goes on.
var ErrNoPermission = errors.New("not permitted")

// CheckTagOverwrite fails when repository (in the registry of account, "" for the
// caller's own) would reject overwriting the cache tag: an immutable repository
// rejects every cache export after the first (moby/buildkit#3776).
func (c *Client) CheckTagOverwrite(ctx context.Context, account, repository, tag string) error {
	out, err := c.api.DescribeRepositories(ctx, &awsecr.DescribeRepositoriesInput{RepositoryNames: []string{repository}, RegistryId: registryID(account)})
	if err != nil {
		return explain(operation{"describe ECR repository " + repository, "ecr:DescribeRepositories"}, err)
	}
	if len(out.Repositories) == 0 {
		return fmt.Errorf("ECR repository %s does not exist: create it (aws ecr create-repository --repository-name %s)", repository, repository)
	}
	r := out.Repositories[0]
	var filters []string
	for _, f := range r.ImageTagMutabilityExclusionFilters {
		filters = append(filters, aws.ToString(f.Filter))
	}
	matched := matchesAny(filters, tag)
	switch r.ImageTagMutability {
	case types.ImageTagMutabilityImmutable:
	case types.ImageTagMutabilityImmutableWithExclusion:
		if matched {
			return nil
		}
	case types.ImageTagMutabilityMutableWithExclusion:
		if !matched {
			return nil
		}
	default:
		return nil
	}
	return fmt.Errorf("ECR repository %s has immutable tags (%s), so the cache tag %s could be written only once. "+
		"Fix: add an exclusion filter for the cache tags (aws ecr put-image-tag-mutability --repository-name %s "+
		"--image-tag-mutability IMMUTABLE_WITH_EXCLUSION --image-tag-mutability-exclusion-filters filterType=WILDCARD,filter='cache-*'), "+
		"or point cache-repository at a separate MUTABLE repository",
		repository, r.ImageTagMutability, tag, repository)
}

// matchesAny reports whether tag matches one of ECR's wildcard filters ('*' matches any run).
func matchesAny(filters []string, tag string) bool {
	for _, f := range filters {
		// ECR wildcards only know '*'; escape what path.Match would read differently.
		f = strings.NewReplacer(`\`, `\\`, "?", `\?`, "[", `\[`).Replace(f)
		if ok, _ := path.Match(f, tag); ok {
			return true
		}
	}
	return false
}

// operation is an ECR call, named for the user, with the IAM action it needs.
type operation struct{ what, iamAction string }

var opGetToken = operation{"get ECR authorization token", "ecr:GetAuthorizationToken"}

// explain turns the ECR errors a user can act on into messages that say what to do.
func explain(op operation, err error) error {
	what := op.what
	var notFound *types.RepositoryNotFoundException
	if errors.As(err, &notFound) {
		return fmt.Errorf("%s: the repository does not exist; create it first (aws ecr create-repository) or fix repository/cache-repository: %w", what, err)
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "AccessDeniedException":
			return fmt.Errorf("%s: access denied; the role needs %s (docs/iam.md lists the policies): %w: %w", what, op.iamAction, ErrNoPermission, err)
		case "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException":
			return fmt.Errorf("%s: AWS rejected the credentials; check the role or keys that configure-aws-credentials set: %w", what, err)
		}
	}
	var exhausted *retry.MaxAttemptsError
	switch {
	case errors.As(err, &exhausted):
		return fmt.Errorf("%s: ECR did not answer after %d attempts: %w: %w", what, exhausted.Attempt, ErrUnavailable, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: ECR did not answer within %s: %w: %w", what, CallTimeout, ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// ErrUnavailable marks an ECR call that kept failing (throttled or 5xx) through
// every retry.
var ErrUnavailable = errors.New("ECR unavailable")
