// Package cacheref decides, once per run, whether the run is trusted and which
// BuildKit registry cache references it imports (reads) and exports (writes),
// from the GitHub event that triggered it. It follows the actions/cache model:
// a run reads its own cache, its base branch's and the default branch's, in
// that order; it writes only its own; untrusted runs write nothing.
//
// Trust is decided from what the workflow actually builds, not from
// GITHUB_REF: for workflow_run, issue_comment, check_run, check_suite, status
// and most other events GITHUB_REF is the default branch while the workflow
// may well check out pull request code, or a fork's commit. Policy with
// cache-export: auto (B is a branch, T a git tag, D the default branch, H the
// head_branch of a workflow_run or check suite, base the pull request's base
// branch):
//
//	event                                     trust      imports (priority order)  exports
//	push refs/heads/B                         trusted    B, D                      B
//	push refs/heads/D                         trusted    D, pr-M...                D
//	push refs/tags/T, release refs/tags/T     trusted    D                         none (T with cache-export: true)
//	schedule, workflow_dispatch               trusted    as push to GITHUB_REF
//	merge_group                               trusted    base, pr-M..., D          none (the queue branch with cache-export: true)
//	pull_request, pull_request_review,        trusted    pr-N, head, base, D       pr-N
//	  pull_request_review_comment, same repository
//	the same from a fork or a deleted fork    untrusted  base, D                   none
//	pull_request_target                       untrusted  base, D                   none
//	workflow_run after push, schedule or      trusted    H, D                      H, once proven (Claim)
//	  workflow_dispatch, head repository is this repository
//	workflow_run after a pull request event,  untrusted  base (when named), D      none
//	  issue_comment or workflow_run, or whose head repository is another or missing
//	  (base: workflow_run.pull_requests[0].base.ref, empty for fork pull requests)
//	workflow_run after any other event        trusted    H, D                      none (H with cache-export: true, once proven)
//	check_run, check_suite with a head_branch trusted    H, D                      none (H with cache-export: true, once proven)
//	the same with head_branch null (a fork's  untrusted  D                         none
//	  commit: GitHub also sends pull_requests [])
//	status whose branches hold the commit     trusted    S, D                      none (S with cache-export: true)
//	  (S: the one whose head it is, if any)
//	status with no branches (a fork's commit) untrusted  D                         none
//	issue_comment on a pull request           untrusted  D                         none
//	any other event (deployment,              trusted    B (GITHUB_REF), D         none (GITHUB_REF's B or T with cache-export: true)
//	  repository_dispatch, release without a tag ref, issue_comment
//	  on an issue, events GitHub adds later)
//	the same when the payload shows a fork    untrusted  D                         none
//
// A workflow_run's or check suite's head_branch is the bare tag name after a
// tag push (and event is still push): a tag named main must not write main's
// cache. So a write keyed on H waits for Decision.Claim to be proven (Prove:
// the GitHub API shows H's head at the commit built); until then the run only
// reads.
//
// Untrusted runs write nothing, push no image, get no secrets, ssh or
// github-token, no entitlements, network: host or buildkit-host-network, and
// registry credentials for the cache registry only; Options.Grants (the
// untrusted-push, untrusted-secrets and untrusted-entitlements inputs) give
// back all but the cache write. The Decision carries each of these, and the
// words the log uses for them.
//
// A fork is told by repository ids (head.repo.id against base.repo.id and
// repository.id), never by names, which forks can copy or rename. A missing
// head repository, or a payload that does not say which repository the head
// is, counts as a fork.
//
// An empty or unreadable payload fails nothing: events that need it only for
// the default branch fall back to GITHUB_REF and the inputs (D is "main" unless
// the default-branch input says otherwise); events that need it to decide trust
// are untrusted (a pull request still takes its number from
// refs/pull/N/merge). Either way Decision.Notes says so.
//
// pr-M are the pull requests the push or merge group merged (merged.go): the
// head commit's message (GitHub's squash "Title (#M)" or merge commit "Merge
// pull request #M from ..."), the queue branch's pr-M, and for a rebase merge
// the GitHub API's answer (Decision.WithMerged). Their builds ran on
// refs/pull/M/merge, the tree the merge produced, so the build after a merge
// is warm. Only a same-repository pull request's run writes pr-M (a fork's
// never does): the default branch reads what it could already have read as a
// base for those runs, within one cache repository. Options.SkipMerged turns
// it off.
//
// ExportNever turns every export off. ExportAlways also exports the runs the
// table marks "none (X with cache-export: true)", but never an untrusted run.
// Duplicates are dropped keeping the first occurrence, and Options.ExtraFrom
// is appended last.
//
// Every key is stored per cache-scope and, when the build targets exactly one
// platform (Options.Platform), per platform: two matrix jobs of one branch
// never share a tag. Cache tags are built by Tag; branch names are attacker-controlled and reach
// a reference only through Tag's slug and hash. The package does no I/O.
package cacheref

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Event is what the runner says about the trigger.
type Event struct {
	Name    string // GITHUB_EVENT_NAME: push, pull_request, pull_request_target, merge_group, workflow_dispatch, schedule, ...
	Ref     string // GITHUB_REF, e.g. refs/heads/main, refs/tags/v1.2.0, refs/pull/42/merge
	HeadRef string // GITHUB_HEAD_REF (pull requests only), a branch name
	BaseRef string // GITHUB_BASE_REF (pull requests only), a branch name
	Payload []byte // the JSON at GITHUB_EVENT_PATH; may be empty or invalid
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

// Options are the action inputs that shape the decision.
type Options struct {
	Prefix        string     // cache-tag-prefix, valid per ValidPrefix; empty means DefaultPrefix
	Scope         string     // cache-scope (matrix key): arbitrary text, may be empty
	Platform      string     // the one platform the build targets, normalized (e.g. "linux/arm64"); empty when several or unknown
	DefaultBranch string     // empty: the payload's repository.default_branch, else "main"
	Export        ExportMode // empty means ExportAuto
	ExtraFrom     []string   // cache-from: extra full refs, imported last
	// SkipMerged turns off importing the caches of the pull requests a push
	// to the default branch (or a merge group) merged (cache-from-merged: false).
	SkipMerged bool
	Grants     Grants // what an untrusted run gets anyway
}

// Grants are the opt-ins that give an untrusted run what it otherwise loses.
type Grants struct {
	Push         bool // untrusted-push: push the image
	Secrets      bool // untrusted-secrets: secrets, secret-files, secret-envs, github-token and ssh
	Entitlements bool // untrusted-entitlements: allow, network: host and buildkit-host-network
}

// Claim is what a run's write key rests on when the payload alone cannot
// prove it: that commit SHA is the head of branch Branch of this repository.
// A tag push sends the bare tag name where a branch name goes, so a tag named
// main would otherwise write main's cache.
type Claim struct {
	What   string // the payload field that names the branch, for the log
	Branch string
	SHA    string
}

// IsZero reports whether there is nothing to prove.
func (c Claim) IsZero() bool { return c.Branch == "" }

// Decision is the outcome of the policy for one run: whether it is trusted
// and which keys it reads and writes. Plan turns it into references.
type Decision struct {
	Untrusted bool     // untrusted code may be built: no cache export, and no image push unless the user opts in
	Reason    string   // why the run is untrusted, else why it exports nothing; "" when it exports
	Notes     []string // warnings for the user, e.g. that the payload was unreadable and GITHUB_REF was used
	Own       Key      // the key this run writes, or would write if allowed; zero when the event names none
	Reads     []Key    // keys to import, priority order, no duplicates, no zero keys
	Writes    bool     // the run exports its cache (and its cache mounts) to Own
	Merged    []int    // pull requests this push or merge group merged, whose pr-N caches Reads holds
	// MergeCommit is the pushed commit of a push to the default branch whose
	// messages name no merged pull request: WithMerged adds those the GitHub
	// API names (GET /repos/{owner}/{repo}/commits/{sha}/pulls).
	MergeCommit string

	// What the build gets: all of it when trusted, only what Grants give when not.
	Push         bool // the image may be pushed (when the push input asks for it)
	Secrets      bool // secrets, secret-files, secret-envs, github-token and ssh reach the build
	Entitlements bool // allow, network: host and buildkit-host-network take effect
	// RestrictCredentials limits the registry credentials BuildKit may use to
	// the cache registry's: untrusted code must not reach the runner's others.
	RestrictCredentials bool

	// Claim, when not zero, is what Writes waits for: Prove says whether the
	// GitHub API confirmed it. Until then the run only reads.
	Claim Claim

	opt Options // normalized, for Plan
}

// Plan is the cache references for one run.
type Plan struct {
	Imports      []string // full refs (repository:tag), priority order, no duplicates, Options.ExtraFrom last
	Export       string   // full ref to export to; "" when none
	ExportTag    string   // the tag of Export alone; "" when none
	ExportReason string   // when Export is "": one sentence saying why, for the user; else ""
	Untrusted    bool     // as Decision.Untrusted: the caller must write nothing (no image push either)
	Scope        Key      // the key this run writes, or would write if allowed; zero when the event names none
	// MountsImports and MountsExport are the cache mounts artifacts' refs
	// (MountsTag), following the layer cache's keys: the same reads in the
	// same order, and the export only when the cache is written.
	MountsImports []string
	MountsExport  string
	Merged        map[string]int // Imports of pull requests this run's commit merged: ref -> number
}

// Decide reads the event once and decides trust and keys; it needs no
// registry. It fails only on invalid options: an event it cannot read is
// decided closed (untrusted) where trust depends on it, and noted.
func Decide(ev Event, opt Options) (Decision, error) {
	opt.Prefix = cmp.Or(opt.Prefix, DefaultPrefix)
	mode, modeErr := ParseExportMode(string(opt.Export))
	if err := errors.Join(ValidPrefix(opt.Prefix), modeErr); err != nil {
		return Decision{}, err
	}
	opt.Export = mode

	pl, plErr := parsePayload(ev.Payload)
	def := BranchKey(cmp.Or(opt.DefaultBranch, pl.defaultBranch(), "main"))
	v := verdictFor(ev, pl, plErr, def)
	var mergeCommit string
	if !opt.SkipMerged {
		switch {
		case ev.Name == "push" && branchOf(ev.Ref) == def.Name:
			v = withMerged(v, merged(pl, ""))
			if len(v.merged) == 0 && !v.untrusted && commitRE.MatchString(pl.HeadCommit.ID) {
				mergeCommit = pl.HeadCommit.ID
			}
		case ev.Name == "merge_group":
			v = withMerged(v, merged(pl, branchOf(cmp.Or(pl.MergeGroup.HeadRef, ev.Ref))))
		}
	}

	d := Decision{Untrusted: v.untrusted, Own: v.own, Merged: v.merged, MergeCommit: mergeCommit, opt: opt, RestrictCredentials: v.untrusted,
		Push: !v.untrusted || opt.Grants.Push, Secrets: !v.untrusted || opt.Grants.Secrets, Entitlements: !v.untrusted || opt.Grants.Entitlements}
	if plErr != nil {
		note := fmt.Sprintf("the event payload (GITHUB_EVENT_PATH) %v: the cache keys come from GITHUB_REF and the inputs", plErr)
		if opt.DefaultBranch == "" {
			note += `, and the default branch is taken to be "main" (set default-branch if it is not)`
		}
		d.Notes = append(d.Notes, note)
	}
	for _, k := range v.reads {
		if k.Name != "" && !slices.Contains(d.Reads, k) { // e.g. a pull request payload without head.ref
			d.Reads = append(d.Reads, k)
		}
	}
	switch {
	case v.untrusted:
		d.Reason = v.why
		if mode == ExportAlways {
			d.Reason += " (cache-export: true is ignored for untrusted runs)"
		}
	case mode == ExportNever:
		d.Reason = "cache-export is false: this run only reads the cache"
	case !v.own.IsZero() && (v.write || mode == ExportAlways) && !v.claim.IsZero():
		d.Claim = v.claim
		d.Reason = fmt.Sprintf("%s %q may name a tag as well as a branch, and it is not proven to be branch %s's head yet", v.claim.What, v.claim.Branch, v.claim.Branch)
	case !v.own.IsZero() && (v.write || mode == ExportAlways):
		d.Writes = true
	default:
		d.Reason = v.why
	}
	return d, nil
}

// Prove settles d.Claim: proven is whether the GitHub API showed Claim.SHA to
// be the head of branch Claim.Branch; why says what it showed otherwise (or
// why it could not ask). Only a proven claim writes.
func (d Decision) Prove(proven bool, why string) Decision {
	if d.Claim.IsZero() {
		return d
	}
	if proven {
		d.Writes, d.Reason = true, ""
		return d
	}
	d.Reason = fmt.Sprintf("%s %q is not proven to be this branch's head (%s), and a tag of that name would write its cache: this run only reads the cache",
		d.Claim.What, d.Claim.Branch, why)
	return d
}

// ForPlatform is the same decision with its tags keyed on platform: a
// push-by-digest build keys its cache on the builder's platform, known only
// once the builder answers.
func (d Decision) ForPlatform(platform string) Decision {
	d.opt.Platform = platform
	return d
}

// PushWords is the notice for an untrusted run whose image push is asked
// for: pushed anyway (untrusted-push) or not; "" for a trusted run.
func (d Decision) PushWords() string {
	switch {
	case !d.Untrusted:
		return ""
	case d.Push:
		return d.Reason + ": the image is pushed anyway (untrusted-push: true); the cache is not written"
	}
	return d.Reason + ": the image is built but not pushed (set untrusted-push: true to publish it knowingly)"
}

// MergeWords is the notice for an untrusted merge run that pushes nothing.
func (d Decision) MergeWords() string {
	return d.Reason + ": nothing is merged or pushed (set untrusted-push: true to publish it knowingly)"
}

// SecretsWithheld is the notice for the secrets an untrusted build loses.
func (d Decision) SecretsWithheld() string {
	return d.Reason + ": secrets, secret-files, secret-envs, github-token and ssh are withheld from this build (set untrusted-secrets: true to pass them)"
}

// EntitlementsWithheld is the notice for the entitlements and host
// networking (named in withheld, e.g. "allow: security.insecure") an
// untrusted build loses.
func (d Decision) EntitlementsWithheld(withheld []string) string {
	return fmt.Sprintf("%s: %s withheld from this build: untrusted code must not run privileged or on the runner's network (set untrusted-entitlements: true to grant them)",
		d.Reason, strings.Join(withheld, ", "))
}

// Plan turns a decision made by Decide into full references in repository (a
// cache repository without tag, e.g.
// "123456789012.dkr.ecr.us-east-1.amazonaws.com/app"). Plan("") is the
// offline plan, for a run without a registry: no references, the same trust;
// it never fails.
func (d Decision) Plan(repository string) (Plan, error) {
	plan := Plan{Untrusted: d.Untrusted, Scope: d.Own, ExportReason: d.Reason}
	if repository == "" {
		if plan.ExportReason == "" {
			plan.ExportReason = "no cache repository: this run neither reads nor writes the cache"
		}
		return plan, nil
	}
	if err := checkRepository(repository); err != nil {
		return Plan{}, err
	}

	ref := func(k Key) string { return repository + ":" + Tag(d.opt.Prefix, k, d.opt.Scope, d.opt.Platform) }
	seen := map[string]bool{}
	add := func(r string) {
		if r != "" && !seen[r] {
			seen[r] = true
			plan.Imports = append(plan.Imports, r)
		}
	}
	for _, k := range d.Reads {
		add(ref(k))
		// A merged pull request's mounts never seed the default branch's: a
		// compiler trusts them as-is, and the default branch's seed every
		// later branch.
		if k.Kind != KindPR || !slices.ContainsFunc(d.Merged, func(n int) bool { return PRKey(n) == k }) {
			plan.MountsImports = append(plan.MountsImports, repository+":"+d.MountsTag(k))
		}
	}
	for _, n := range d.Merged {
		if plan.Merged == nil {
			plan.Merged = map[string]int{}
		}
		plan.Merged[ref(PRKey(n))] = n
	}
	for _, r := range d.opt.ExtraFrom {
		add(strings.TrimSpace(r))
	}
	if d.Writes {
		plan.ExportTag = Tag(d.opt.Prefix, d.Own, d.opt.Scope, d.opt.Platform)
		plan.Export = repository + ":" + plan.ExportTag
		plan.MountsExport = repository + ":" + d.MountsTag(d.Own)
	}
	return plan, nil
}

// MountsTag is the cache mounts tag of k under the decision's prefix, scope
// and platform: MountsTag next to the tags Plan derives.
func (d Decision) MountsTag(k Key) string {
	return MountsTag(d.opt.Prefix, k, d.opt.Scope, d.opt.Platform)
}

// checkRepository rejects what would make "<repository>:<tag>" wrong.
func checkRepository(repo string) error {
	if strings.ContainsAny(repo, " \t\r\n@") {
		return fmt.Errorf("cache repository %q: must be a plain repository name without spaces or digest", repo)
	}
	// A ':' after the last '/' is a tag ("host:5000/app" has it before).
	if strings.Contains(repo[strings.LastIndexByte(repo, '/')+1:], ":") {
		return fmt.Errorf("cache repository %q: must not include a tag; cache tags are derived per branch", repo)
	}
	return nil
}
