package ecr

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecr-build-cache/ecr-build-cache/internal/testing/fakeecr"
)

// Tags are listed with their digests across pages, deleted in batches of at
// most 100, and what ECR refuses comes back per tag.
func TestListAndDeleteTags(t *testing.T) {
	t.Parallel()
	s, c, _ := double(t, fakeecr.Config{Repositories: []fakeecr.Repository{{Name: "app"}}})
	ctx := context.Background()
	tok, err := c.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	auth := remote.WithAuth(&authn.Basic{Username: tok.Username, Password: tok.Password})
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for i := range 150 {
		tag := fmt.Sprintf("cache-%03d", i)
		ref, err := name.NewTag(s.RegistryHost+"/app:"+tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, auth); err != nil {
			t.Fatal(err)
		}
		tags = append(tags, tag)
	}

	listed, err := c.ListTags(ctx, "", "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 150 || slices.ContainsFunc(listed, func(ti TaggedImage) bool { return ti.Digest != digest.String() }) {
		t.Fatalf("listed %d tags: %v", len(listed), listed[:min(3, len(listed))])
	}

	removed, failed, err := c.DeleteTags(ctx, "", "app", append(tags[:120], "cache-missing"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, tags[:120]) || len(failed) != 1 || failed[0].Tag != "cache-missing" || failed[0].Code != "ImageNotFound" {
		t.Errorf("removed %d, failed %+v", len(removed), failed)
	}
	listed, err = c.ListTags(ctx, "", "app")
	if err != nil || len(listed) != 30 || listed[0].Tag != "cache-120" {
		t.Errorf("after the delete: %d tags, err %v", len(listed), err)
	}

	pushed, err := c.PushedAt(ctx, "", "app", "cache-149")
	if err != nil || time.Since(pushed) > time.Minute {
		t.Errorf("PushedAt = %v, %v", pushed, err)
	}
	s.AgeImages(30 * 24 * time.Hour)
	if aged, err := c.PushedAt(ctx, "", "app", "cache-149"); err != nil || !aged.Equal(pushed.Add(-30*24*time.Hour)) {
		t.Errorf("PushedAt after 30 days = %v, %v", aged, err)
	}
	if _, err := c.PushedAt(ctx, "", "app", "cache-000"); !errors.Is(err, ErrImageNotFound) {
		t.Errorf("PushedAt of a deleted tag: %v", err)
	}
}
