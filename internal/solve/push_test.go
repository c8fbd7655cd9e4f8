package solve_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/faultproxy"
	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/teststack"
)

func TestMain(m *testing.M) { os.Exit(teststack.Main(m)) }

// A registry that stops answering in the middle of an image push holds
// BuildKit forever (its registry client has no response timeout): the build's
// push is stopped after PushTimeout, with an error naming the image, and the
// image can be pushed again alone.
func TestPushIsStoppedAfterPushTimeout(t *testing.T) {
	s := teststack.Get(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+s.BaseImage+"\nRUN echo pushed > /pushed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hang := &faultproxy.Rule{Method: "PUT", Path: `^/v2/push-timeout/manifests/latest$`, Delay: 5 * time.Minute, Count: 1}
	p := faultproxy.Serve(t, "http://"+s.Registry, hang)
	c, err := client.New(context.Background(), s.BuildkitAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	image := p.Host + "/push-timeout:latest"
	req := solve.Request{ContextDir: dir, Dockerfile: filepath.Join(dir, "Dockerfile"), Tags: []string{image}, Push: true,
		PushTimeout: 3 * time.Second, Insecure: func(string) bool { return true }}
	res, err := solve.Build(context.Background(), c, req, io.Discard)
	var perr *solve.PushError
	if want := "push " + image + ": stopped after 3s: the registry did not finish taking the image"; !errors.As(err, &perr) || err.Error() != want {
		t.Fatalf("build error %v; want a push error %q", err, want)
	}
	if hang.Matched() != 1 || res.Pushed {
		t.Fatalf("%d manifest PUTs, pushed %v; want the one that hung, not pushed", hang.Matched(), res.Pushed)
	}
	// The rule hangs only the first PUT: the image alone goes through.
	if err := solve.Push(context.Background(), c, req, res, io.Discard); err != nil {
		t.Fatalf("second push: %v", err)
	}
	if d, found, err := teststack.Manifest(s.Registry+"/push-timeout:latest", nil); err != nil || !found || d.Digest.String() != res.Digest || !res.Pushed {
		t.Errorf("image: found=%v err=%v, digest %q, pushed %v", found, err, res.Digest, res.Pushed)
	}
}
