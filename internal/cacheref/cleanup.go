package cacheref

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// A cleanup run answers an event that ends a key's life: a delete event for a
// branch, or a pull_request or pull_request_target event whose action is
// closed (pull_request_target lets the role that may delete images trust one
// workflow of the default branch rather than every pull request). It deletes
// that key's cache tags and builds nothing:
//
//	event                                        deletes
//	delete, ref_type branch B                    B's tags, unless B is a default branch (ref is
//	                                             the short name, taken verbatim)
//	delete, ref_type tag                         nothing (only branch caches are cleaned up)
//	pull_request(_target) closed, same repo, #N  pr-N's tags, never a branch's (the head
//	                                             branch may well be named main, teslamate#5217)
//	pull_request closed from a fork (or unknown) nothing: its runs never wrote a cache
//
// A tag is deleted only when it provably belongs to the key: its hash is
// recomputed from the prefix, the key and a scope and platform read back from
// the tag (or listed by the user), and must match. The readable parts alone
// prove nothing: branch "feature/x" and branch "feature-x" share them.

// IsCleanupEvent reports whether ev is one a cleanup run answers: a delete
// event, or a pull_request or pull_request_target event with action closed. A
// payload that cannot be read is not one: such a run builds as before.
func IsCleanupEvent(ev Event) bool {
	switch ev.Name {
	case "delete":
		return true
	case "pull_request", "pull_request_target":
		var pl struct {
			Action string `json:"action"`
		}
		return json.Unmarshal(ev.Payload, &pl) == nil && pl.Action == "closed"
	}
	return false
}

// CleanupOptions are the inputs that shape a cleanup.
type CleanupOptions struct {
	Prefix string // cache-tag-prefix; empty means DefaultPrefix
	// DefaultBranch is the default-branch input: protected like the payload's
	// default branch.
	DefaultBranch string
	// Scopes and Platforms (normalized) are tried besides those read back from
	// the tags: a scope such as "Web App" cannot be read back from its slug.
	Scopes, Platforms []string
}

// Cleanup is what a cleanup run deletes.
type Cleanup struct {
	Key    Key    // whose tags go; zero when nothing may be deleted
	Reason string // when Key is zero: why, for the user

	opt CleanupOptions // normalized
}

// DecideCleanup reads a cleanup event. It fails only on an invalid prefix; an
// event it cannot read deletes nothing, with the reason.
func DecideCleanup(ev Event, opt CleanupOptions) (Cleanup, error) {
	opt.Prefix = cmp.Or(opt.Prefix, DefaultPrefix)
	if err := ValidPrefix(opt.Prefix); err != nil {
		return Cleanup{}, err
	}
	c := Cleanup{opt: opt}
	pl, plErr := parsePayload(ev.Payload)
	switch ev.Name {
	case "delete":
		c.Key, c.Reason = deletedBranch(ev, pl, plErr, opt.DefaultBranch)
	case "pull_request", "pull_request_target":
		c.Key, c.Reason = closedPullRequest(ev, pl, plErr)
	default:
		c.Reason = fmt.Sprintf("the %s event ends no branch or pull request", cmp.Or(ev.Name, "(unnamed)"))
	}
	return c, nil
}

func deletedBranch(ev Event, pl payload, plErr error, defaultInput string) (Key, string) {
	if plErr != nil {
		return Key{}, fmt.Sprintf("the delete payload %v, so which branch was deleted is unknown", plErr)
	}
	var d struct {
		Ref     string `json:"ref"`      // the short name, e.g. feature/x; a branch may be named refs/heads/x
		RefType string `json:"ref_type"` // branch or tag
	}
	if err := json.Unmarshal(ev.Payload, &d); err != nil || d.Ref == "" {
		return Key{}, "the delete payload names no ref"
	}
	if d.RefType != "branch" {
		return Key{}, fmt.Sprintf("a deleted %s (%q): only branch caches are cleaned up", cmp.Or(d.RefType, "ref"), d.Ref)
	}
	name := d.Ref
	// GITHUB_REF of a delete event is the default branch; with none known,
	// "main" is, as for a build.
	defaults := []string{defaultInput, pl.defaultBranch(), branchOf(ev.Ref)}
	if cmp.Or(defaults...) == "" {
		defaults = []string{"main"}
	}
	if slices.Contains(defaults, name) {
		return Key{}, fmt.Sprintf("%s is a default branch: its cache is never deleted", BranchKey(name))
	}
	return BranchKey(name), ""
}

func closedPullRequest(ev Event, pl payload, plErr error) (Key, string) {
	if plErr != nil {
		return Key{}, fmt.Sprintf("the %s payload %v, so the pull request cannot be shown to come from this repository", ev.Name, plErr)
	}
	pr := pl.PullRequest
	if pr == nil {
		return Key{}, "the " + ev.Name + " payload has no pull_request"
	}
	if why := forkReason("pull request", pr.Head.Repo, pr.Base.Repo, pl.Repository); why != "" {
		return Key{}, why + ", so there is no cache to delete"
	}
	n := cmp.Or(pl.Number, pr.Number, prNumberOf(ev.Ref))
	if n <= 0 {
		return Key{}, "no pull request number in the payload or in GITHUB_REF"
	}
	return PRKey(n), ""
}

// Owned returns the tags, in order, that provably belong to c.Key: each is
// exactly Tag(prefix, Key, scope, platform), or MountsTag, for a scope and a
// platform read back from the tag's readable parts (as written, or with '-'
// read as '/' where a platform such as linux/arm64 would have been) or given
// in the options. A tag it cannot prove is left, whatever it looks like.
func (c Cleanup) Owned(tags []string) []string {
	if c.Key.IsZero() {
		return nil
	}
	var out []string
	for _, tag := range tags {
		if c.owns(tag) {
			out = append(out, tag)
		}
	}
	return out
}

// owns proves tag is the key's layer cache tag (Tag) or cache mounts tag
// (MountsTag).
func (c Cleanup) owns(tag string) bool {
	return c.ownsAs(tag, c.opt.Prefix, Tag) || c.ownsAs(tag, c.opt.Prefix+mountsInfix, MountsTag)
}

func (c Cleanup) ownsAs(tag, prefix string, form func(prefix string, key Key, scope, platform string) string) bool {
	rest, ok := strings.CutPrefix(tag, prefix+"-")
	if !ok || len(rest) < hashLen || !isHex(rest[len(rest)-hashLen:]) {
		return false
	}
	middle := strings.TrimSuffix(rest[:len(rest)-hashLen], "-")
	for _, parts := range c.afterKey(middle) {
		for _, split := range splits(parts) {
			for _, scope := range readBack(split[0], c.opt.Scopes) {
				for _, platform := range readBack(split[1], c.opt.Platforms) {
					if form(c.opt.Prefix, c.Key, scope, platform) == tag {
						return true
					}
				}
			}
		}
	}
	return false
}

// afterKey is what may follow the key's slug in middle (the tag between the
// prefix and the hash), for every length Tag may have cut the slug to.
func (c Cleanup) afterKey(middle string) []string {
	full := slug(c.Key.label())
	var out []string
	for n := len(full); n >= 0; n-- {
		k := truncate(full, n)
		switch {
		case k == "":
			out = append(out, middle)
		case middle == k:
			out = append(out, "")
		case strings.HasPrefix(middle, k+"-"):
			out = append(out, middle[len(k)+1:])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// splits cuts s into a scope part and a platform part at every '-' (either
// may be empty).
func splits(s string) [][2]string {
	out := [][2]string{{s, ""}, {"", s}}
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			out = append(out, [2]string{s[:i], s[i+1:]})
		}
	}
	return out
}

// readBack is what a scope or platform slug may have been written from: the
// slug itself, the slug with its first one or two '-' read as '/' (platforms,
// and scopes set to a platform), and each listed value that slugs to it or,
// cut short, to a longer slug starting with it.
func readBack(s string, listed []string) []string {
	out := []string{s}
	if first := strings.Index(s, "-"); first > 0 {
		one := s[:first] + "/" + s[first+1:]
		out = append(out, one)
		if second := strings.Index(one, "-"); second > 0 {
			out = append(out, one[:second]+"/"+one[second+1:])
		}
	}
	for _, l := range listed {
		if ls := slug(l); ls == s || (s != "" && strings.HasPrefix(ls, s)) {
			out = append(out, l)
		}
	}
	return out
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// DigestDelete is one manifest a cleanup may delete from a registry that
// deletes by digest only, and the owned tags that go with it.
type DigestDelete struct {
	Digest string
	Tags   []string
}

// SharedTag is an owned tag whose manifest another tag also names.
type SharedTag struct {
	Tag, Digest string
	Others      []string // the tags outside the owned set that name Digest, sorted
}

// ByDigest plans a cleanup for a registry that deletes manifests by digest
// only, where deleting a manifest deletes every tag that names it. A new
// branch's cache is often a tag copy of its fallback's manifest (the same
// digest under two tags): deleting that digest would delete the fallback's
// cache too. So a digest is deleted only when every tag naming it is owned;
// the other owned tags are returned as shared, and left. digests maps every
// tag of the repository to its manifest digest; owned tags missing from it
// are skipped.
func ByDigest(owned []string, digests map[string]string) ([]DigestDelete, []SharedTag) {
	isOwned := make(map[string]bool, len(owned))
	for _, t := range owned {
		isOwned[t] = true
	}
	others := map[string][]string{}
	for t, d := range digests {
		if !isOwned[t] {
			others[d] = append(others[d], t)
		}
	}
	var deletes []DigestDelete
	var shared []SharedTag
	index := map[string]int{}
	for _, t := range owned {
		d, ok := digests[t]
		switch {
		case !ok:
		case len(others[d]) > 0:
			o := slices.Clone(others[d])
			slices.Sort(o)
			shared = append(shared, SharedTag{Tag: t, Digest: d, Others: o})
		default:
			i, seen := index[d]
			if !seen {
				i = len(deletes)
				index[d] = i
				deletes = append(deletes, DigestDelete{Digest: d})
			}
			deletes[i].Tags = append(deletes[i].Tags, t)
		}
	}
	return deletes, shared
}
