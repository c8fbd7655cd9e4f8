package cacheref

import (
	"regexp"
	"strings"
	"testing"
)

// tagRE is the OCI distribution-spec tag grammar.
var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

func checkTag(t *testing.T, tag string) {
	t.Helper()
	if !tagRE.MatchString(tag) {
		t.Errorf("tag %q (%d chars) is not a valid OCI tag", tag, len(tag))
	}
}

// Pinned outputs: changing the tag format cold-starts every user's cache, so
// it must be a deliberate change to this test.
func TestTagGolden(t *testing.T) {
	tests := []struct {
		prefix   string
		key      Key
		scope    string
		platform string
		want     string
	}{
		{"cache", BranchKey("main"), "", "", "cache-main-"},
		{"cache", BranchKey("feature/Login#2"), "", "", "cache-feature-Login-2-"},
		{"cache", BranchKey("feature/Login#2"), "linux/arm64", "", "cache-feature-Login-2-linux-arm64-"},
		{"cache", BranchKey("feature/Login#2"), "", "linux/arm64", "cache-feature-Login-2-linux-arm64-"},
		{"cache", BranchKey("feature/Login#2"), "api", "linux/arm/v7", "cache-feature-Login-2-api-linux-arm-v7-"},
		{"cache", PRKey(42), "", "", "cache-pr-42-"},
		{"cache", TagKey("v1.2.0"), "", "windows/amd64", "cache-tag-v1.2.0-windows-amd64-"},
		{"bk", BranchKey("--Ünïcode Ω branch.."), " matrix: [a, b] ", "", "bk-n-code-branch-matrix-a-b-"},
		{"cache", BranchKey("###"), "", "", "cache-"},
		{"cache", BranchKey("###"), "", "/", "cache-"},
		{"cache", BranchKey(`zzz";echo${IFS}"hello";#`), "", "", "cache-zzz-echo-IFS-hello-"},
	}
	for _, tt := range tests {
		got := Tag(tt.prefix, tt.key, tt.scope, tt.platform)
		if want := tt.want + hash(tt.prefix, tt.key, tt.scope, tt.platform); got != want {
			t.Errorf("Tag(%q, %v, %q, %q) = %q, want %q", tt.prefix, tt.key, tt.scope, tt.platform, got, want)
		}
		checkTag(t, got)
	}
	// The hash itself is pinned too, not only its placement. Without a
	// platform it is the hash every earlier version wrote: adding platforms
	// must not cold-start existing caches. Each is the documented encoding
	// (uvarint length, bytes; per field) hashed outside Go, e.g.
	// printf '\x05cache\x06branch\x04main\x00' | sha256sum | cut -c1-16
	for _, tt := range []struct {
		scope, platform, want string
	}{
		{"", "", "cache-main-51296a552f2ae44a"},                        // \x05cache\x06branch\x04main\x00
		{"linux/arm64", "", "cache-main-linux-arm64-a4ae4511f495c756"}, // \x05cache\x06branch\x04main\x0blinux/arm64
		{"", "linux/arm64", "cache-main-linux-arm64-96b5176197b4a7df"}, // \x05cache\x06branch\x04main\x00\x0blinux/arm64
	} {
		if got := Tag("cache", BranchKey("main"), tt.scope, tt.platform); got != tt.want {
			t.Errorf("Tag(cache, main, %q, %q) = %q, want %q", tt.scope, tt.platform, got, tt.want)
		}
	}
}

func TestTagLength(t *testing.T) {
	long := strings.Repeat("feature/", 38)[:300]
	tests := []struct {
		name     string
		prefix   string
		key      Key
		scope    string
		platform string
	}{
		{"300-char branch", "cache", BranchKey(long), "", ""},
		{"300-char branch and scope", "cache", BranchKey(long), long, ""},
		{"300-char scope", "cache", BranchKey("main"), long, ""},
		{"300-char platform", "cache", BranchKey("main"), "", long},
		{"300-char branch, scope and platform", "cache", BranchKey(long), long, long},
		{"longest prefix", strings.Repeat("p", 32), BranchKey(long), long, long},
		{"300 unicode runes", "cache", BranchKey(strings.Repeat("ß", 300)), strings.Repeat("é", 300), strings.Repeat("ü", 300)},
		{"cut lands on separators", "cache", BranchKey(strings.Repeat("a.-", 100)), strings.Repeat("-.b", 100), strings.Repeat(".-c", 100)},
		{"git tag", "cache", TagKey(long), "x", "linux/amd64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tag := Tag(tt.prefix, tt.key, tt.scope, tt.platform)
			checkTag(t, tag)
			if len(tag) > 128 {
				t.Errorf("len = %d > 128", len(tag))
			}
			if !strings.HasPrefix(tag, tt.prefix+"-") || !strings.HasSuffix(tag, "-"+hash(tt.prefix, tt.key, tt.scope, tt.platform)) {
				t.Errorf("tag %q lost its prefix or hash", tag)
			}
		})
	}

	// The key slug gets the room first; a long scope or platform does not
	// crowd it out.
	for _, tag := range []string{Tag("cache", BranchKey(long), long, ""), Tag("cache", BranchKey(long), long, long)} {
		if keyPart := strings.TrimPrefix(tag, "cache-"); !strings.HasPrefix(keyPart, slug(long)[:50]) {
			t.Errorf("tag %q keeps less than 50 chars of the branch", tag)
		}
	}
	if !strings.Contains(Tag("cache", BranchKey("main"), long, ""), "-feature-feature-") {
		t.Errorf("a short key should leave room for the scope slug")
	}
	// A usual platform survives whole next to a long branch and scope.
	if tag := Tag("cache", BranchKey(long), long, "linux/arm64/v8"); !strings.Contains(tag, "-linux-arm64-v8-") {
		t.Errorf("tag %q lost the platform", tag)
	}
}

func TestTagDistinct(t *testing.T) {
	type in struct {
		key             Key
		scope, platform string
	}
	pairs := [][2]in{
		{{BranchKey("feature/a"), "", ""}, {BranchKey("feature-a"), "", ""}},
		{{BranchKey("Feature"), "", ""}, {BranchKey("feature"), "", ""}},
		{{BranchKey("pr-1"), "", ""}, {PRKey(1), "", ""}},
		{{BranchKey("tag-v1"), "", ""}, {TagKey("v1"), "", ""}},
		{{BranchKey("v1"), "", ""}, {TagKey("v1"), "", ""}},
		{{BranchKey("main"), "", ""}, {BranchKey("main"), "-", ""}},
		{{BranchKey("main"), "", ""}, {BranchKey("main"), " ", ""}},
		{{BranchKey("main-x"), "", ""}, {BranchKey("main"), "x", ""}},
		{{BranchKey("a"), "bc", ""}, {BranchKey("ab"), "c", ""}},
		{{BranchKey("main."), "", ""}, {BranchKey("main"), "", ""}},
		{{BranchKey("a/../b"), "", ""}, {BranchKey("a/./b"), "", ""}},
		{{BranchKey(strings.Repeat("x", 300) + "1"), "", ""}, {BranchKey(strings.Repeat("x", 300) + "2"), "", ""}},
		{{BranchKey("ä"), "", ""}, {BranchKey("ö"), "", ""}},
		// Platforms: two of one branch, and a platform against a scope or
		// key that reads the same.
		{{BranchKey("main"), "", "linux/amd64"}, {BranchKey("main"), "", "linux/arm64"}},
		{{BranchKey("main"), "", "linux/arm64"}, {BranchKey("main"), "", "linux/arm64/v8"}},
		{{BranchKey("main"), "", "linux/arm64"}, {BranchKey("main"), "linux/arm64", ""}},
		{{BranchKey("main"), "", "linux/arm64"}, {BranchKey("main"), "", ""}},
		{{BranchKey("main"), "", "linux/arm64"}, {BranchKey("main-linux/arm64"), "", ""}},
		{{BranchKey("main"), "a", "b"}, {BranchKey("main"), "a-b", ""}},
		{{BranchKey("main"), "a", "b"}, {BranchKey("main"), "", "a/b"}},
		{{BranchKey("main"), "a", "b"}, {BranchKey("main"), "b", "a"}},
		{{BranchKey("main"), "", "-"}, {BranchKey("main"), "", ""}},
	}
	for _, p := range pairs {
		a, b := Tag("cache", p[0].key, p[0].scope, p[0].platform), Tag("cache", p[1].key, p[1].scope, p[1].platform)
		if a == b {
			t.Errorf("%+v and %+v share tag %q", p[0], p[1], a)
		}
	}
	// Different prefixes never collide either, even when truncation shifts.
	long := BranchKey(strings.Repeat("x-", 150))
	if Tag("c", long, "", "") == Tag("c-x", long, "", "") {
		t.Error(`prefixes "c" and "c-x" share a tag`)
	}
}

func TestTagDeterministic(t *testing.T) {
	for _, k := range []Key{BranchKey("feature/Login#2"), PRKey(42), TagKey("v1.2.0"), BranchKey(strings.Repeat("é/", 200))} {
		if a, b := Tag("cache", k, "s c", "linux/arm64"), Tag("cache", k, "s c", "linux/arm64"); a != b {
			t.Errorf("Tag(%v) not deterministic: %q vs %q", k, a, b)
		}
	}
}

func TestValidPrefix(t *testing.T) {
	for _, ok := range []string{"cache", "_c", "0", "a.b-c_d", strings.Repeat("p", 32)} {
		if err := ValidPrefix(ok); err != nil {
			t.Errorf("ValidPrefix(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-c", ".c", "ca che", "cache/x", "cache:x", "cache\n", strings.Repeat("p", 33), "câche"} {
		err := ValidPrefix(bad)
		if err == nil || !strings.Contains(err.Error(), "cache-tag-prefix") {
			t.Errorf("ValidPrefix(%q) = %v, want a cache-tag-prefix error", bad, err)
		}
	}
}

func TestKeyString(t *testing.T) {
	for k, want := range map[Key]string{
		BranchKey("a\nb"): `branch "a\nb"`,
		PRKey(42):         "pull request #42",
		TagKey("v1"):      `tag "v1"`,
	} {
		if got := k.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", k, got, want)
		}
	}
}

func FuzzTag(f *testing.F) {
	f.Add(uint8(0), "feature/a", "", "", uint8(0), "feature-a", "", "")
	f.Add(uint8(0), "Feature", "", "", uint8(0), "feature", "", "")
	f.Add(uint8(0), "pr-1", "", "", uint8(1), "1", "", "")
	f.Add(uint8(0), "main", "", "", uint8(0), "main", "-", "")
	f.Add(uint8(0), "a", "bc", "", uint8(0), "ab", "c", "")
	f.Add(uint8(2), "v1.2.0", "linux/amd64", "", uint8(0), "v1.2.0", "linux/amd64", "")
	f.Add(uint8(0), `zzz";echo${IFS}"hello";#`, "a b\n$x", "", uint8(0), "zzz-echo-IFS-hello", "a-b-x", "")
	f.Add(uint8(0), strings.Repeat("Ω/", 150), strings.Repeat("..", 150), "", uint8(0), strings.Repeat("Ω/", 150)+"x", "", "")
	f.Add(uint8(0), "main", "", "", uint8(0), "main", "", "")
	f.Add(uint8(0), "main", "", "linux/amd64", uint8(0), "main", "", "linux/arm64")
	f.Add(uint8(0), "main", "linux/arm64", "", uint8(0), "main", "", "linux/arm64")
	f.Add(uint8(0), "main", "a", "b", uint8(0), "main", "a-b", "")
	f.Add(uint8(0), "main", "", "-", uint8(0), "main", "", "")
	f.Add(uint8(0), strings.Repeat("b/", 100), strings.Repeat("s", 100), strings.Repeat("p/", 100), uint8(0), strings.Repeat("b/", 100), strings.Repeat("s", 100), strings.Repeat("p/", 99))
	f.Fuzz(func(t *testing.T, kind1 uint8, name1, scope1, platform1 string, kind2 uint8, name2, scope2, platform2 string) {
		kinds := []string{KindBranch, KindPR, KindTag}
		k1 := Key{Kind: kinds[int(kind1)%len(kinds)], Name: name1}
		k2 := Key{Kind: kinds[int(kind2)%len(kinds)], Name: name2}
		t1, t2 := Tag("cache", k1, scope1, platform1), Tag("cache", k2, scope2, platform2)
		checkTag(t, t1)
		checkTag(t, t2)
		if same := k1 == k2 && scope1 == scope2 && platform1 == platform2; same != (t1 == t2) {
			t.Errorf("(%v, %q, %q) -> %q and (%v, %q, %q) -> %q", k1, scope1, platform1, t1, k2, scope2, platform2, t2)
		}
	})
}
