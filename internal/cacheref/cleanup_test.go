package cacheref

import (
	"slices"
	"strings"
	"testing"
)

func TestIsCleanupEvent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, fixture string
		want          bool
	}{
		{"delete", "delete_branch.json", true},
		{"delete", "delete_tag.json", true},
		{"pull_request", "pull_request_closed.json", true},
		{"pull_request", "pull_request_closed_fork.json", true},
		{"pull_request", "pull_request.json", false},               // synchronize
		{"pull_request", "", false},                                // unreadable: builds as before
		{"pull_request_target", "pull_request_target.json", false}, // opened, not closed
		{"pull_request_target", "pull_request_closed.json", true},
		{"push", "push_branch.json", false},
	} {
		var payload []byte
		if tc.fixture != "" {
			payload = fixture(t, tc.fixture)
		}
		if got := IsCleanupEvent(Event{Name: tc.name, Payload: payload}); got != tc.want {
			t.Errorf("IsCleanupEvent(%s, %s) = %v, want %v", tc.name, tc.fixture, got, tc.want)
		}
	}
}

func TestDecideCleanup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		ev      Event
		fixture string
		opt     CleanupOptions
		want    Key    // zero: nothing may be deleted
		reason  string // substring of Reason when want is zero
	}{
		{name: "deleted branch", ev: Event{Name: "delete", Ref: "refs/heads/main"}, fixture: "delete_branch.json",
			want: BranchKey("feature/x")},
		{name: "deleted branch that the default-branch input names", ev: Event{Name: "delete", Ref: "refs/heads/main"}, fixture: "delete_branch.json",
			opt: CleanupOptions{DefaultBranch: "feature/x"}, reason: `branch "feature/x" is a default branch`},
		{name: "deleted branch that GITHUB_REF names", ev: Event{Name: "delete", Ref: "refs/heads/feature/x"}, fixture: "delete_branch.json",
			reason: "is a default branch"},
		{name: "deleted git tag", ev: Event{Name: "delete", Ref: "refs/heads/main"}, fixture: "delete_tag.json",
			reason: `a deleted tag ("v1.2.0"): only branch caches are cleaned up`},
		// ref is the short name: a branch may be named refs/heads/release,
		// and its deletion must not touch branch release's cache.
		{name: "deleted branch named refs/heads/release", ev: Event{Name: "delete", Ref: "refs/heads/main"}, fixture: "delete_branch_named_refs_heads.json",
			want: BranchKey("refs/heads/release")},
		{name: "unreadable delete payload", ev: Event{Name: "delete", Ref: "refs/heads/main", Payload: []byte("{")},
			reason: "which branch was deleted is unknown"},
		{name: "delete payload without default branch protects main", ev: Event{Name: "delete",
			Payload: []byte(`{"ref":"main","ref_type":"branch"}`)}, reason: "is a default branch"},
		{name: "closed pull request", ev: Event{Name: "pull_request", Ref: "refs/pull/7/merge"}, fixture: "pull_request_closed.json",
			want: PRKey(7)},
		// teslamate#5217: the head branch's name never selects a branch key.
		{name: "closed pull request whose head branch is main", ev: Event{Name: "pull_request", Ref: "refs/pull/7/merge"},
			fixture: "pull_request_closed_head_main.json", want: PRKey(7)},
		{name: "closed pull request, pull_request_target", ev: Event{Name: "pull_request_target", Ref: "refs/heads/main"}, fixture: "pull_request_closed.json",
			want: PRKey(7)},
		{name: "closed pull request from a fork, pull_request_target", ev: Event{Name: "pull_request_target", Ref: "refs/heads/main"},
			fixture: "pull_request_closed_fork.json", reason: "pull request from a fork"},
		{name: "closed pull request from a fork", ev: Event{Name: "pull_request", Ref: "refs/pull/7/merge"},
			fixture: "pull_request_closed_fork.json", reason: "pull request from a fork"},
		{name: "pull request from a deleted fork", ev: Event{Name: "pull_request", Ref: "refs/pull/45/merge"},
			fixture: "pull_request_deleted_fork.json", reason: "deleted fork"},
		{name: "unreadable pull_request payload", ev: Event{Name: "pull_request", Ref: "refs/pull/7/merge", Payload: []byte("not json")},
			reason: "cannot be shown to come from this repository"},
		{name: "other event", ev: Event{Name: "push", Ref: "refs/heads/feature/x"}, fixture: "push_branch.json",
			reason: "the push event ends no branch or pull request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := tc.ev
			if tc.fixture != "" {
				ev.Payload = fixture(t, tc.fixture)
			}
			c, err := DecideCleanup(ev, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if c.Key != tc.want {
				t.Errorf("key %v, want %v (reason %q)", c.Key, tc.want, c.Reason)
			}
			if tc.want.IsZero() && !strings.Contains(c.Reason, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", c.Reason, tc.reason)
			}
			if !tc.want.IsZero() && c.Reason != "" {
				t.Errorf("reason %q for a cleanup that deletes", c.Reason)
			}
		})
	}
	if _, err := DecideCleanup(Event{Name: "delete"}, CleanupOptions{Prefix: "-bad"}); err == nil {
		t.Error("an invalid prefix was accepted")
	}
}

func TestCleanupOwnsOnlyProvenTags(t *testing.T) {
	t.Parallel()
	feature := BranchKey("feature/x")
	long := BranchKey("feature/" + strings.Repeat("very-long-branch-name-", 8))
	tag := func(k Key, scope, platform string) string { return Tag(DefaultPrefix, k, scope, platform) }
	longScope := strings.Repeat("scope", 20) // its slug is cut short in the tag

	// Tags that are read back from their slugs alone.
	readable := []string{
		tag(feature, "", ""),
		tag(feature, "web", ""),
		tag(feature, "", "linux/arm64"),
		tag(feature, "", "linux/arm/v7"),
		tag(feature, "web", "linux/amd64"),
		tag(feature, "linux/amd64", ""), // cache-scope set to the matrix platform
		tag(feature, "api-v2", "linux/arm64"),
	}
	// Tags of the key whose scope cannot be read back from its slug.
	unreadable := []string{tag(feature, "Web App", ""), tag(feature, "node 18", "linux/arm64"), tag(feature, longScope, "linux/amd64")}
	longTags := []string{tag(long, "", ""), tag(long, "web", "linux/amd64")}
	others := []string{
		tag(BranchKey("main"), "", ""),
		tag(BranchKey("main"), "web", ""),
		tag(BranchKey("feature-x"), "", ""), // same slug, another branch
		tag(BranchKey("feature-x"), "web", ""),
		tag(BranchKey("Feature/x"), "", ""),
		tag(PRKey(7), "", ""),
		Tag("other", feature, "", ""),
		"cache-feature-x-0123456789abcdef", // looks right, hash wrong
		"cache-feature-x-web",
		"cache-feature-x",
		"latest",
	}
	all := slices.Concat(others, readable, unreadable, longTags)

	ev := Event{Name: "delete", Ref: "refs/heads/main", Payload: []byte(`{"ref":"feature/x","ref_type":"branch","repository":{"default_branch":"main"}}`)}
	c, err := DecideCleanup(ev, CleanupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Owned(all); !slices.Equal(got, readable) {
		t.Errorf("without listed scopes:\n got %q\nwant %q", got, readable)
	}

	c, err = DecideCleanup(ev, CleanupOptions{Scopes: []string{"Web App", "node 18", longScope}, Platforms: []string{"linux/arm64"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Owned(all), slices.Concat(readable, unreadable); !slices.Equal(got, want) {
		t.Errorf("with listed scopes:\n got %q\nwant %q", got, want)
	}

	ev.Payload = []byte(`{"ref":"` + long.Name + `","ref_type":"branch","repository":{"default_branch":"main"}}`)
	c, err = DecideCleanup(ev, CleanupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Owned(all); !slices.Equal(got, longTags) {
		t.Errorf("a branch whose slug is cut short:\n got %q\nwant %q", got, longTags)
	}

	// A pull request owns pr-N's tags only, never a branch's.
	pr, err := DecideCleanup(Event{Name: "pull_request", Ref: "refs/pull/7/merge", Payload: fixture(t, "pull_request_closed_head_main.json")}, CleanupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pr.Owned(slices.Concat(all, []string{tag(BranchKey("pr-7"), "", ""), tag(BranchKey("main"), "", "linux/amd64")})), []string{tag(PRKey(7), "", "")}; !slices.Equal(got, want) {
		t.Errorf("pull request 7 owns %q, want %q", got, want)
	}

	// Nothing is owned when nothing may be deleted.
	fork, err := DecideCleanup(Event{Name: "pull_request", Payload: fixture(t, "pull_request_closed_fork.json")}, CleanupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := fork.Owned(slices.Concat(all, []string{tag(PRKey(7), "", "")})); len(got) != 0 {
		t.Errorf("a fork's closed pull request owns %q", got)
	}
}

func TestByDigest(t *testing.T) {
	t.Parallel()
	digests := map[string]string{
		"cache-main-1":     "sha256:main",
		"cache-feature-1":  "sha256:main", // a tag copy of main's cache
		"cache-feature-2":  "sha256:f2",
		"cache-feature-3":  "sha256:f3",
		"cache-feature-3b": "sha256:f3", // two owned tags, one manifest
		"cache-other":      "sha256:o",
		"latest":           "sha256:o",
	}
	owned := []string{"cache-feature-1", "cache-feature-2", "cache-feature-3", "cache-feature-3b", "cache-feature-gone"}
	deletes, shared := ByDigest(owned, digests)
	wantDeletes := []DigestDelete{{"sha256:f2", []string{"cache-feature-2"}}, {"sha256:f3", []string{"cache-feature-3", "cache-feature-3b"}}}
	if !slices.EqualFunc(deletes, wantDeletes, func(a, b DigestDelete) bool { return a.Digest == b.Digest && slices.Equal(a.Tags, b.Tags) }) {
		t.Errorf("deletes %v, want %v", deletes, wantDeletes)
	}
	if len(shared) != 1 || shared[0].Tag != "cache-feature-1" || shared[0].Digest != "sha256:main" || !slices.Equal(shared[0].Others, []string{"cache-main-1"}) {
		t.Errorf("shared %+v, want cache-feature-1 kept for cache-main-1", shared)
	}
}

// A cleanup also takes the key's cache mounts tags, proven the same way, and
// never a layer cache tag that merely reads like one.
func TestCleanupOwnsMountsTags(t *testing.T) {
	t.Parallel()
	feature, lookalike := BranchKey("feature/x"), BranchKey("mnt-feature/x")
	mounts := []string{
		MountsTag(DefaultPrefix, feature, "", ""),
		MountsTag(DefaultPrefix, feature, "web", "linux/arm64"),
	}
	others := []string{
		Tag(DefaultPrefix, lookalike, "", ""), // cache-mnt-feature-x-<hash>, a layer cache
		MountsTag(DefaultPrefix, BranchKey("main"), "", ""),
		MountsTag(DefaultPrefix, lookalike, "", ""),
		MountsTag("other", feature, "", ""),
	}
	all := slices.Concat(others, mounts, []string{Tag(DefaultPrefix, feature, "", "")})
	for _, tc := range []struct {
		branch string
		want   []string
	}{
		{"feature/x", append(slices.Clone(mounts), Tag(DefaultPrefix, feature, "", ""))},
		{"mnt-feature/x", []string{Tag(DefaultPrefix, lookalike, "", ""), MountsTag(DefaultPrefix, lookalike, "", "")}},
	} {
		ev := Event{Name: "delete", Ref: "refs/heads/main", Payload: []byte(`{"ref":"` + tc.branch + `","ref_type":"branch","repository":{"default_branch":"main"}}`)}
		c, err := DecideCleanup(ev, CleanupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Owned(all); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(tc.want))) {
			t.Errorf("%s owns:\n got %q\nwant %q", tc.branch, got, tc.want)
		}
	}
}

// Mount tags read like their layer cache's, stay valid, and never equal a
// layer-cache tag: not the same key's, and not the tag of a branch or a
// prefix chosen to look like one.
func TestMountsTagNeverCollidesWithLayerCache(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("feature/very-long-branch-name-", 10)
	for _, tc := range []struct {
		prefix          string
		key             Key
		scope, platform string
	}{
		{"cache", BranchKey("main"), "", ""},
		{"cache", PRKey(42), "api", "linux/arm64"},
		{strings.Repeat("p", 32), BranchKey(long), long, "linux/arm/v7"},
	} {
		got := MountsTag(tc.prefix, tc.key, tc.scope, tc.platform)
		if !tagRE.MatchString(got) {
			t.Errorf("MountsTag(%q, %v) = %q: not a valid tag", tc.prefix, tc.key, got)
		}
		if !strings.HasPrefix(got, tc.prefix+"-mnt-") {
			t.Errorf("MountsTag(%q, %v) = %q: want the prefix %q", tc.prefix, tc.key, got, tc.prefix+"-mnt-")
		}
		lookalikes := []string{
			Tag(tc.prefix, tc.key, tc.scope, tc.platform),
			Tag(tc.prefix+"-mnt", tc.key, tc.scope, tc.platform),
			Tag(tc.prefix, BranchKey("mnt-"+tc.key.Name), tc.scope, tc.platform),
		}
		if slices.Contains(lookalikes, got) {
			t.Errorf("MountsTag(%q, %v) = %q equals a layer-cache tag %q", tc.prefix, tc.key, got, lookalikes)
		}
	}
	if MountsTag("cache", BranchKey("main"), "", "") == MountsTag("cache", BranchKey("main"), "", "linux/amd64") {
		t.Error("the platform is not part of the mounts tag")
	}
}
