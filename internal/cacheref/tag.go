package cacheref

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Key kinds. The kind is hashed into every tag, so a branch named "pr-42"
// and pull request 42 (both slugged "pr-42") never share a cache tag.
const (
	KindBranch = "branch" // Name is a branch name, e.g. "feature/Login#2"
	KindPR     = "pr"     // Name is a pull request number in decimal, e.g. "42"
	KindTag    = "tag"    // Name is a git tag name, e.g. "v1.2.0"
)

// Key identifies whose cache a tag holds: a branch, a pull request or a git tag.
// Names are taken verbatim from the event and may be attacker-controlled; they
// only ever reach a tag through its slug and its hash.
type Key struct {
	Kind string
	Name string
}

// BranchKey is the key of a branch.
func BranchKey(name string) Key { return Key{Kind: KindBranch, Name: name} }

// PRKey is the key of a pull request.
func PRKey(number int) Key { return Key{Kind: KindPR, Name: strconv.Itoa(number)} }

// TagKey is the key of a git tag.
func TagKey(name string) Key { return Key{Kind: KindTag, Name: name} }

// IsZero reports whether k names nothing (a run with no key of its own).
func (k Key) IsZero() bool { return k == Key{} }

// String describes k for logs and job summaries; the name is quoted because
// it is untrusted text.
func (k Key) String() string {
	switch k.Kind {
	case KindBranch:
		return "branch " + strconv.Quote(k.Name)
	case KindPR:
		return "pull request #" + k.Name
	case KindTag:
		return "tag " + strconv.Quote(k.Name)
	}
	return k.Kind + " " + strconv.Quote(k.Name)
}

// label is the readable text a key's slug is made from.
func (k Key) label() string {
	if k.Kind == KindBranch {
		return k.Name
	}
	return k.Kind + "-" + k.Name
}

const (
	// DefaultPrefix is the cache-tag-prefix used when none is given.
	DefaultPrefix = "cache"
	// maxTagLen is the OCI distribution-spec limit every client enforces
	// (ECR's API would take 300, but nothing can pull such a tag).
	maxTagLen = 128
	// hashLen hex digits = 64 bits: collisions are out of reach for the number
	// of branches a repository will ever have.
	hashLen = 16
)

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,31}$`)

// ValidPrefix checks a cache-tag-prefix input. A valid prefix keeps every Tag
// valid, and leaves room for the hash within the 128-character tag limit.
func ValidPrefix(prefix string) error {
	if !prefixRE.MatchString(prefix) {
		return fmt.Errorf("cache-tag-prefix %q: must be 1 to 32 characters, start with a letter, digit or '_', "+
			"and use letters, digits, '_', '.', '-' only (e.g. %q)", prefix, DefaultPrefix)
	}
	return nil
}

// Tag returns the cache tag for key in the given matrix scope and target
// platform:
//
//	<prefix>-<key slug>[-<scope slug>][-<platform slug>]-<hash>
//
// The slugs are for humans: runs of characters outside [A-Za-z0-9._-] become
// '-', leading and trailing '-' and '.' are trimmed, and they are cut short to
// fit 128 characters. The hash (16 hex digits of SHA-256 over prefix, kind,
// exact name, exact scope and exact platform) is what keeps tags apart:
// "feature/a" and "feature-a", "Feature" and "feature", branch "pr-1" and pull
// request 1, scope "" and "-", scope "linux/arm64" and platform "linux/arm64"
// all get different tags. An empty platform leaves the tag as it was before
// platforms joined the key, so existing caches stay warm. For a prefix
// accepted by ValidPrefix the result always matches
// [A-Za-z0-9_][A-Za-z0-9._-]{0,127}.
func Tag(prefix string, key Key, scope, platform string) string {
	keySlug, scopeSlug, platformSlug := slug(key.label()), slug(scope), slug(platform)

	// Room for "-<key slug>", "-<scope slug>" and "-<platform slug>". The key
	// slug says whose cache this is, so it gets the room first; the scope and
	// the platform keep at most a quarter each, the platform before the scope.
	room := maxTagLen - len(prefix) - 1 - hashLen
	scopeRoom, platformRoom := min(partLen(scopeSlug), room/4), min(partLen(platformSlug), room/4)
	keySlug = truncate(keySlug, room-scopeRoom-platformRoom-1)
	platformSlug = truncate(platformSlug, room-partLen(keySlug)-scopeRoom-1)
	scopeSlug = truncate(scopeSlug, room-partLen(keySlug)-partLen(platformSlug)-1)

	var b strings.Builder
	b.WriteString(prefix)
	for _, part := range []string{keySlug, scopeSlug, platformSlug, hash(prefix, key, scope, platform)} {
		if part != "" {
			b.WriteByte('-')
			b.WriteString(part)
		}
	}
	return b.String()
}

// mountsInfix follows the prefix in a cache mounts tag (MountsTag).
const mountsInfix = "-mnt"

// MountsTag is the tag of the cache mounts artifact for key (see
// internal/cachemount), next to the layer cache's Tag(prefix, key, scope,
// platform):
//
//	<prefix>-mnt-<key slug>[-<scope slug>][-<platform slug>]-<hash>
//
// It is Tag with prefix "<prefix>-mnt" and the scope followed by a NUL byte:
// no input can hold a NUL (environment variables cannot), so no layer-cache
// tag of any prefix hashes the same fields, while the slug drops the NUL and
// the tag reads like its layer cache's. It has the same 128 character limit.
func MountsTag(prefix string, key Key, scope, platform string) string {
	return Tag(prefix+mountsInfix, key, scope+"\x00", platform)
}

// slug replaces every run of bytes outside [A-Za-z0-9._-] (this includes all
// non-ASCII text) with a single '-' and trims '-' and '.' from both ends.
func slug(s string) string {
	var b strings.Builder
	inRun := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isTagByte(c) {
			b.WriteByte(c)
			inRun = false
		} else if !inRun {
			b.WriteByte('-')
			inRun = true
		}
	}
	return strings.Trim(b.String(), "-.")
}

func isTagByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// truncate cuts s to at most n bytes (slugs are ASCII) without leaving a
// dangling separator.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	return strings.TrimRight(s[:n], "-.")
}

// partLen is the length of "-<s>" in a tag, or 0 when s is omitted.
func partLen(s string) int {
	if s == "" {
		return 0
	}
	return len(s) + 1
}

// hash encodes each field with a length prefix, so no two different tuples
// share an encoding (("ab","c") and ("a","bc") differ). The prefix is hashed
// too: truncation depends on its length, so without it prefix "c" and prefix
// "c-x" could map different keys to one tag. An empty platform is left out, so
// tags without one hash as they did before platforms existed; a present one
// adds a fifth field, and a decoder reading fields off the encoding tells four
// from five, so the two never share an input.
func hash(prefix string, key Key, scope, platform string) string {
	fields := []string{prefix, key.Kind, key.Name, scope}
	if platform != "" {
		fields = append(fields, platform)
	}
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, field := range fields {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(field)))])
		h.Write([]byte(field))
	}
	return hex.EncodeToString(h.Sum(nil))[:hashLen]
}

// CheckImageTags refuses image references (repository:tag, as pushed) that
// would land among the cache's own tags: a tag of cacheRepo (host/path) that
// starts with the cache prefix. A tag taken from a fork's branch named
// cache-main-<hash> would otherwise overwrite main's cache or mounts tag.
// Every such reference is named in the one error.
func CheckImageTags(prefix, cacheRepo string, refs []string) error {
	prefix = cmp.Or(prefix, DefaultPrefix)
	var bad []string
	for _, ref := range refs {
		ref, _, _ = strings.Cut(ref, "@")
		slash := strings.LastIndexByte(ref, '/')
		colon := strings.LastIndexByte(ref, ':')
		if colon <= slash {
			continue // no tag
		}
		if ref[:colon] == cacheRepo && strings.HasPrefix(ref[colon+1:], prefix+"-") {
			bad = append(bad, ref)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("tags: %s would overwrite cache tags: in the cache repository %s, tags starting with %q are the cache's; choose other tags, or set cache-repository or cache-tag-prefix to keep images and cache apart",
		strings.Join(bad, ", "), cacheRepo, prefix+"-")
}
