package run_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/fakeecr"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

// These tests run the action's binary against the ECR double in front of the
// real registry, configured the way a runner configures the AWS SDK: through
// environment variables (AWS_ENDPOINT_URL_ECR reaches the double).

func startECR(t *testing.T, s *teststack.Stack, repos ...fakeecr.Repository) *fakeecr.Server {
	t.Helper()
	e, err := fakeecr.Start(fakeecr.Config{Upstream: "http://" + s.Registry, Repositories: repos})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// ecrRun prepares a push to main with only repository and tags set, and AWS
// credentials in the environment as configure-aws-credentials leaves them.
func ecrRun(t *testing.T, s *teststack.Stack, e *fakeecr.Server, repo string, extra map[string]string) *teststack.ActionRun {
	r := pushRun(t, s, repo, "main", extra)
	delete(r.Env, "INPUT_REGISTRY")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":     fakeecr.DefaultAccessKeyID,
		"AWS_SECRET_ACCESS_KEY": "not-a-real-secret",
		"AWS_REGION":            fakeecr.DefaultRegion,
		"AWS_ENDPOINT_URL_ECR":  e.APIURL,
	} {
		r.Env[k] = v
	}
	return r
}

func execRun(t *testing.T, r *teststack.ActionRun) error {
	t.Helper()
	return r.Exec(context.Background(), teststack.Binary(t))
}

// ecrAuth logs in with the password the double issued last.
func ecrAuth(e *fakeecr.Server) authn.Authenticator {
	pw := e.Passwords()
	return &authn.Basic{Username: "AWS", Password: pw[len(pw)-1]}
}

func TestECRBuildWithOnlyRepositoryAndTags(t *testing.T) {
	s := teststack.Get(t)
	prune(t, s)
	e := startECR(t, s, fakeecr.Repository{Name: "ecr-app"})
	r := ecrRun(t, s, e, "ecr-app", nil)
	if err := execRun(t, r); err != nil {
		t.Fatalf("run: %v\n%s", err, r.Stdout())
	}
	o := r.Outputs(t)

	// The registry host came from the token's proxy endpoint, and the front
	// accepted the pushes only with the ECR password.
	image := e.RegistryHost + "/ecr-app:latest"
	if o["image"] != image {
		t.Errorf("image = %q, want %q", o["image"], image)
	}
	if _, found, err := teststack.Manifest(image, ecrAuth(e)); err != nil || !found {
		t.Errorf("image not in ECR: found=%v err=%v", found, err)
	}
	if _, found, err := teststack.Manifest(o["cache-ref"], ecrAuth(e)); err != nil || !found || !strings.HasPrefix(o["cache-ref"], e.RegistryHost+"/ecr-app:cache-main-") {
		t.Errorf("cache %q not in ECR: found=%v err=%v", o["cache-ref"], found, err)
	}
	if c, n := steps(t, o); n != 3 || c != 0 {
		t.Errorf("cold ECR build: %d/%d cached", c, n)
	}

	// No password the double issued, nor the token carrying it, appears anywhere
	// but in the ::add-mask:: command that hides it.
	var leaks []string
	for _, pw := range e.Passwords() {
		token := base64.StdEncoding.EncodeToString([]byte("AWS:" + pw))
		for where, text := range map[string]string{
			"stdout":  withoutMaskCommands(r.Stdout()),
			"outputs": readFile(t, r.OutputFile),
			"summary": r.Summary(t),
		} {
			if strings.Contains(text, pw) || strings.Contains(text, token) {
				leaks = append(leaks, where)
			}
		}
		if !strings.Contains(r.Stdout(), "::add-mask::"+pw) {
			t.Errorf("password was not masked")
		}
	}
	if len(leaks) > 0 {
		t.Errorf("ECR password leaked into %v", leaks)
	}
}

func withoutMaskCommands(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "::add-mask::") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The double is strict: the legacy cache format (an index of layer blobs) that
// BuildKit wrote before image-manifest=true is rejected with 400, as ECR does.
func TestECRDoubleRejectsLegacyCacheFormat(t *testing.T) {
	s := teststack.Get(t)
	e := startECR(t, s, fakeecr.Repository{Name: "legacy"})
	tok, err := ecrClient(t, e).Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// buildctl reads credentials from a docker config: a throw-away one for the double.
	dockerCfg := t.TempDir()
	auth, _ := json.Marshal(map[string]any{"auths": map[string]any{
		e.RegistryHost: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte("AWS:" + tok.Password))},
	}})
	if err := os.WriteFile(filepath.Join(dockerCfg, "config.json"), auth, 0o600); err != nil {
		t.Fatal(err)
	}
	ref := e.RegistryHost + "/legacy:cache"
	cmd := exec.Command(s.Tool("buildctl"), "--addr", s.BuildkitAddr, "build", "--progress", "plain",
		"--frontend", "dockerfile.v0", "--local", "context="+appDir(t), "--local", "dockerfile="+appDir(t),
		"--opt", "build-arg:BASE="+s.BaseImage,
		"--export-cache", "type=registry,ref="+ref+",mode=max,image-manifest=false,registry.insecure=true")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DOCKER_CONFIG=" + dockerCfg}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "manifests[0] has media type 'application/vnd.oci.image.layer.v1.tar+gzip', which is not an image manifest") {
		t.Fatalf("the legacy cache index was not rejected (err %v):\n%s", err, out)
	}
	if _, found, _ := teststack.Manifest(ref, &authn.Basic{Username: "AWS", Password: tok.Password}); found {
		t.Error("the legacy cache tag exists after the rejection")
	}
}

func TestECRImmutableRepositoryFailsBeforeBuilding(t *testing.T) {
	s := teststack.Get(t)
	e := startECR(t, s, fakeecr.Repository{Name: "frozen", Mutability: fakeecr.Immutable})
	r := ecrRun(t, s, e, "frozen", nil)
	err := execRun(t, r)
	if err == nil {
		t.Fatalf("an immutable cache repository did not fail the run:\n%s", r.Stdout())
	}
	for _, want := range []string{"frozen has immutable tags", "IMMUTABLE_WITH_EXCLUSION", "cache-repository"} {
		if !strings.Contains(r.Stdout(), want) {
			t.Errorf("error lacks %q:\n%s", want, r.Stdout())
		}
	}
	if strings.Contains(r.Stdout(), "[1/") {
		t.Error("the build started before the check failed")
	}
	if _, found, _ := teststack.Manifest(s.Registry+"/frozen:latest", nil); found {
		t.Error("an image was pushed")
	}
}

func TestECRWithoutDescribePermissionWarnsAndBuilds(t *testing.T) {
	s := teststack.Get(t)
	e, err := fakeecr.Start(fakeecr.Config{Upstream: "http://" + s.Registry, DenyDescribe: true,
		Repositories: []fakeecr.Repository{{Name: "nodescribe"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	r := ecrRun(t, s, e, "nodescribe", nil)
	if err := execRun(t, r); err != nil {
		t.Fatalf("run: %v\n%s", err, r.Stdout())
	}
	if !strings.Contains(r.Stdout(), "::warning::could not check whether nodescribe allows overwriting") {
		t.Errorf("no warning about the missing permission:\n%s", r.Stdout())
	}
}

func TestECRErrorsSayWhatToDo(t *testing.T) {
	s := teststack.Get(t)
	e, err := fakeecr.Start(fakeecr.Config{Upstream: "http://" + s.Registry, DenyToken: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"no credentials": {map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, "no AWS credentials found; run aws-actions/configure-aws-credentials"},
		"no region":      {map[string]string{"AWS_REGION": ""}, "no AWS region; set the aws-region input or AWS_REGION"},
		"access denied":  {nil, "access denied; the role needs ecr:GetAuthorizationToken"},
		"wrong key":      {map[string]string{"AWS_ACCESS_KEY_ID": "AKIDSOMEONEELSE"}, "AWS rejected the credentials"},
	} {
		t.Run(name, func(t *testing.T) {
			r := ecrRun(t, s, e, "app", nil)
			for k, v := range tc.env {
				if v == "" {
					delete(r.Env, k)
				} else {
					r.Env[k] = v
				}
			}
			if err := execRun(t, r); err == nil || !strings.Contains(r.Stdout(), tc.want) {
				t.Errorf("err %v; output lacks %q:\n%s", err, tc.want, r.Stdout())
			}
		})
	}
}

// A fork's pull request has no AWS credentials: it still builds, writes nothing
// and says why, instead of failing the check.
func TestECRForkPullRequestWithoutCredentialsBuilds(t *testing.T) {
	s := teststack.Get(t)
	e := startECR(t, s, fakeecr.Repository{Name: "fork-ecr"})
	r := ecrRun(t, s, e, "fork-ecr", nil)
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"} {
		delete(r.Env, k)
	}
	fixtureEvent(t, r, "pull_request", "refs/pull/43/merge", "pull_request_fork.json")
	if err := execRun(t, r); err != nil {
		t.Fatalf("fork PR without credentials failed: %v\n%s", err, r.Stdout())
	}
	o := r.Outputs(t)
	if o["digest"] != "" || o["cache-ref"] != "" || o["cache-from"] != "" || o["total-steps"] != "3" {
		t.Errorf("outputs %q", o)
	}
	if !strings.Contains(r.Stdout(), "::notice::pull request from a fork: untrusted code never writes the cache, and AWS is not configured") {
		t.Errorf("no notice:\n%s", r.Stdout())
	}
	if e.TokenCalls() != 0 {
		t.Errorf("%d token calls without credentials", e.TokenCalls())
	}
}

// One run holding every kind of secret: the ECR token, a registry password and
// build secrets. None may appear in what the run printed or wrote, nor in the
// pushed image or cache.
func TestNoSecretReachesOutputsImageOrCache(t *testing.T) {
	s := teststack.Get(t)
	e := startECR(t, s, fakeecr.Repository{Name: "secrets-all"})
	const registryPassword = "registry-pw-5e6f7a8b"
	in := inputsApp(t)
	in["username"], in["password"] = "robot", registryPassword
	r := ecrRun(t, s, e, "secrets-all", in)
	if err := execRun(t, r); err != nil {
		t.Fatalf("run: %v\n%s", err, r.Stdout())
	}
	o := r.Outputs(t)
	secrets := []string{secretValue, fileSecretValue, registryPassword}
	for _, pw := range e.Passwords() {
		secrets = append(secrets, pw, base64.StdEncoding.EncodeToString([]byte("AWS:"+pw)))
	}
	printed := map[string]string{
		"stdout and stderr": withoutMaskCommands(r.Stdout()),
		"GITHUB_OUTPUT":     readFile(t, r.OutputFile),
		"job summary":       r.Summary(t),
		"metadata output":   o["metadata"],
	}
	for i, secret := range secrets {
		for where, text := range printed {
			if strings.Contains(text, secret) {
				t.Errorf("secret %d is in the %s", i, where)
			}
		}
		for _, ref := range []string{o["image"], o["cache-ref"]} {
			if hit, err := teststack.Contains(ref, []byte(secret), ecrAuth(e)); err != nil || hit {
				t.Errorf("secret %d in %s: %v, %v", i, ref, hit, err)
			}
		}
	}
	if got, err := teststack.ImageFile(o["image"], "/token-length", ecrAuth(e)); err != nil || strings.TrimSpace(got) != strconv.Itoa(len(secretValue)) {
		t.Errorf("the build did not read the secret: /token-length = %q, %v", got, err)
	}
}

// An ECR endpoint that accepts connections and never answers fails the run
// within a bound, saying which call did not answer: the AWS SDK's default
// HTTP client has no response timeout.
func TestECRStuckEndpointFailsInBoundedTime(t *testing.T) {
	t.Parallel() // mostly waiting, and no prune
	s := teststack.Get(t)
	e := startECR(t, s, fakeecr.Repository{Name: "ecr-stuck"})
	r := ecrRun(t, s, e, "ecr-stuck", nil)
	r.Env["AWS_ENDPOINT_URL_ECR"] = "http://" + teststack.StuckHost(t)
	const bound = 3 * time.Minute // a hang is stopped here
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	err := r.Exec(ctx, teststack.Binary(t))
	if ctx.Err() != nil {
		t.Fatalf("the run was still going after %s:\n%s", bound, r.Stdout())
	}
	want := "::error::get ECR authorization token: ECR did not answer after 5 attempts"
	if err == nil || !strings.Contains(r.Stdout(), want) || !strings.Contains(r.Stdout(), "timeout awaiting response headers") {
		t.Errorf("run error %v; output lacks %q ... timeout awaiting response headers:\n%s", err, want, r.Stdout())
	}
}
