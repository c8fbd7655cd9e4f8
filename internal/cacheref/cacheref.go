// Package cacheref decides which BuildKit registry cache references a run
// imports (reads) and which one it exports (writes), from the GitHub event
// that triggered it. It follows the actions/cache model: a run reads its own
// cache, its base branch's and the default branch's, in that order; it writes
// only its own; untrusted runs write nothing.
//
// Policy (ExportAuto):
//
//	event                          imports (priority order)         exports
//	push refs/heads/B              B, default                       B
//	push refs/tags/T               default                          none (tag builds reuse the default branch's cache)
//	pull_request, same repository  pr-N, head, base, default        pr-N
//	pull_request from a fork       base, default                    none, Untrusted
//	pull_request_target            base, default                    none, Untrusted
//	merge_group                    base, default                    none (the queue branch is temporary)
//	any other event, refs/heads/B  as push to B
//	any other event, other ref     default                          none
//
// ExportNever turns every export off. ExportAlways also exports tag builds
// (to the tag's key) and merge groups (to the queue branch's key), but never
// an untrusted run. Duplicates are dropped keeping the first occurrence, and
// Options.ExtraFrom is appended last.
//
// Cache tags are built by Tag; branch names are attacker-controlled and reach
// a reference only through Tag's slug and hash. The package does no I/O.
package cacheref

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
)

// Event is what the runner says about the trigger.
type Event struct {
	Name    string // GITHUB_EVENT_NAME: push, pull_request, pull_request_target, merge_group, workflow_dispatch, schedule, ...
	Ref     string // GITHUB_REF, e.g. refs/heads/main, refs/tags/v1.2.0, refs/pull/42/merge
	HeadRef string // GITHUB_HEAD_REF (pull requests only), a branch name
	BaseRef string // GITHUB_BASE_REF (pull requests only), a branch name
	Payload []byte // the JSON at GITHUB_EVENT_PATH; may be empty
}

// ExportMode is the cache-export input.
type ExportMode string

const (
	ExportAuto   ExportMode = "auto"  // the policy decides (see the package doc)
	ExportAlways ExportMode = "true"  // export to the run's own key whenever it has one, unless untrusted
	ExportNever  ExportMode = "false" // read the cache, never write it
)

// ParseExportMode parses a cache-export input; empty means ExportAuto.
func ParseExportMode(s string) (ExportMode, error) {
	switch m := ExportMode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return ExportAuto, nil
	case ExportAuto, ExportAlways, ExportNever:
		return m, nil
	}
	return "", fmt.Errorf("cache-export %q: use auto, true or false", s)
}

// Options are the action inputs that shape the plan.
type Options struct {
	Repository    string     // cache repository without tag, e.g. "123456789012.dkr.ecr.us-east-1.amazonaws.com/app"
	Prefix        string     // cache-tag-prefix, valid per ValidPrefix; empty means DefaultPrefix
	Scope         string     // cache-scope (matrix key): arbitrary text, may be empty
	DefaultBranch string     // empty: the payload's repository.default_branch, else "main"
	Export        ExportMode // empty means ExportAuto
	ExtraFrom     []string   // cache-from: extra full refs, imported last
}

// Plan is the cache references for one run.
type Plan struct {
	Imports      []string // full refs (Repository:tag), priority order, no duplicates, Options.ExtraFrom last
	Export       string   // full ref to export to; "" when none
	ExportTag    string   // Export's tag
	ExportReason string   // when Export is "": one sentence saying why, for the user; else ""
	Untrusted    bool     // fork pull request or pull_request_target: the caller must write nothing (no image push either)
	Scope        Key      // the key this run writes, or would write if allowed; zero when the event names none
}

// Derive computes the plan for ev. It fails only on what it cannot handle:
// invalid options, a payload that is not JSON when the event needs it, and a
// pull request event without a discoverable number.
func Derive(ev Event, opt Options) (Plan, error) {
	prefix := opt.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if err := ValidPrefix(prefix); err != nil {
		return Plan{}, err
	}
	if err := checkRepository(opt.Repository); err != nil {
		return Plan{}, err
	}
	mode, err := ParseExportMode(string(opt.Export))
	if err != nil {
		return Plan{}, err
	}
	pl, err := parsePayload(ev, opt.DefaultBranch == "")
	if err != nil {
		return Plan{}, err
	}
	defaultBranch := cmp.Or(opt.DefaultBranch, pl.Repository.DefaultBranch, "main")
	d, err := decide(ev, pl, BranchKey(defaultBranch))
	if err != nil {
		return Plan{}, err
	}

	ref := func(k Key) string { return opt.Repository + ":" + Tag(prefix, k, opt.Scope) }
	plan := Plan{Untrusted: d.untrusted, Scope: d.own}
	seen := map[string]bool{}
	add := func(r string) {
		if r != "" && !seen[r] {
			seen[r] = true
			plan.Imports = append(plan.Imports, r)
		}
	}
	for _, k := range d.reads {
		if k.Name != "" { // e.g. a pull request payload without head.ref
			add(ref(k))
		}
	}
	for _, r := range opt.ExtraFrom {
		add(strings.TrimSpace(r))
	}

	switch {
	case d.untrusted:
		plan.ExportReason = d.why
		if mode == ExportAlways {
			plan.ExportReason += " (cache-export: true is ignored for untrusted runs)"
		}
	case mode == ExportNever:
		plan.ExportReason = "cache-export is false: this run only reads the cache"
	case !d.own.IsZero() && (d.write || mode == ExportAlways):
		plan.ExportTag = Tag(prefix, d.own, opt.Scope)
		plan.Export = opt.Repository + ":" + plan.ExportTag
	default:
		plan.ExportReason = d.why
	}
	return plan, nil
}

// Untrusted reports whether ev must write nothing (a fork pull request or
// pull_request_target), and why. Unlike Derive it needs no cache repository, so
// a caller can decide before it knows the registry, e.g. whether a missing login
// is expected.
func Untrusted(ev Event) (bool, string, error) {
	pl, err := parsePayload(ev, false)
	if err != nil {
		return false, "", err
	}
	d, err := decide(ev, pl, Key{})
	if err != nil {
		return false, "", err
	}
	return d.untrusted, d.why, nil
}

// checkRepository rejects what would make "<repository>:<tag>" wrong.
func checkRepository(repo string) error {
	if repo == "" {
		return errors.New("cache repository is empty")
	}
	if strings.ContainsAny(repo, " \t\r\n@") {
		return fmt.Errorf("cache repository %q: must be a plain repository name without spaces or digest", repo)
	}
	// A ':' after the last '/' is a tag ("host:5000/app" has it before).
	if strings.Contains(repo[strings.LastIndexByte(repo, '/')+1:], ":") {
		return fmt.Errorf("cache repository %q: must not include a tag; cache tags are derived per branch", repo)
	}
	return nil
}

// decision is the policy outcome, before export mode and tags are applied.
type decision struct {
	reads     []Key  // imports in priority order
	own       Key    // the key this run writes or would write; zero when none
	write     bool   // whether ExportAuto exports own
	why       string // why not, for the user, when !write
	untrusted bool
}

func decide(ev Event, pl payload, def Key) (decision, error) {
	switch ev.Name {
	case "pull_request", "pull_request_target":
		return decidePullRequest(ev, pl, def)
	case "merge_group":
		return decideMergeGroup(ev, pl, def), nil
	}
	// push, workflow_dispatch, schedule, workflow_run, release, ...: the ref decides.
	if branch := branchOf(ev.Ref); branch != "" {
		own := BranchKey(branch)
		return decision{reads: []Key{own, def}, own: own, write: true}, nil
	}
	if tag, ok := strings.CutPrefix(ev.Ref, "refs/tags/"); ok && tag != "" {
		return decision{reads: []Key{def}, own: TagKey(tag),
			why: "a tag build reuses the default branch's cache (set cache-export: true to write one for the tag)"}, nil
	}
	return decision{reads: []Key{def}, why: "the event names no branch or tag to key a cache on"}, nil
}

func decidePullRequest(ev Event, pl payload, def Key) (decision, error) {
	n, err := pl.prNumber(ev.Ref)
	if err != nil {
		return decision{}, fmt.Errorf("read %s event: %w", ev.Name, err)
	}
	pr := pl.PullRequest
	own := PRKey(n)
	base := BranchKey(cmp.Or(ev.BaseRef, pr.Base.Ref))

	// pull_request_target runs the base repository's workflow with its
	// credentials, and is typically used to build the pull request's code: a
	// same-repository head proves nothing about what gets built.
	why := "pull_request_target builds on behalf of a pull request: untrusted code never writes the cache"
	if ev.Name == "pull_request" {
		why = pl.forkReason()
	}
	if why != "" {
		return decision{reads: []Key{base, def}, own: own, why: why, untrusted: true}, nil
	}
	head := BranchKey(cmp.Or(ev.HeadRef, pr.Head.Ref))
	return decision{reads: []Key{own, head, base, def}, own: own, write: true}, nil
}

func decideMergeGroup(ev Event, pl payload, def Key) decision {
	d := decision{
		reads: []Key{BranchKey(cmp.Or(branchOf(pl.MergeGroup.BaseRef), ev.BaseRef)), def},
		why:   "a merge queue branch is temporary: its build reuses the base branch's cache (set cache-export: true to write one anyway)",
	}
	if head := branchOf(cmp.Or(pl.MergeGroup.HeadRef, ev.Ref)); head != "" {
		d.own = BranchKey(head)
	}
	return d
}

// branchOf returns B for "refs/heads/B", else "".
func branchOf(ref string) string {
	if branch, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
		return branch
	}
	return ""
}
