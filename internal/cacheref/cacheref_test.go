package cacheref

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const testRepo = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app"

var refRE = regexp.MustCompile(`^` + regexp.QuoteMeta(testRepo) + `:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// refs maps keys to the full refs a plan should hold with the default prefix.
func refs(scope, platform string, keys ...Key) []string {
	var out []string
	for _, k := range keys {
		out = append(out, testRepo+":"+Tag(DefaultPrefix, k, scope, platform))
	}
	return out
}

type policyCase struct {
	name      string
	ev        Event
	fixture   string // payload file in testdata; "" keeps ev.Payload
	cut       int    // when > 0, only the fixture's first cut bytes: a truncated file
	opt       Options
	imports   []Key
	export    Key    // zero: no export expected
	reason    string // substring of ExportReason when export is zero
	untrusted bool
	scope     Key
	note      string // substring of a Decision note; "" expects no notes
	// prove, when set, answers the decision's claim as the GitHub API would:
	// "head" (the commit is the branch's head) or a reason it is not.
	prove string
	// merged are the pull requests whose caches imports holds as merged: their
	// mounts are not imported.
	merged []Key
}

var (
	main, develop = BranchKey("main"), BranchKey("develop")
	loginBranch   = BranchKey("feature/Login#2")
	queue         = BranchKey("gh-readonly-queue/release/2.x/pr-42-9049f1265b7d61be4a8904a9a27120d2064dab3b")
)

// Trusted events keyed on what they build, as before the trust model.
var trustedCases = []policyCase{
	{
		name: "push branch", ev: Event{Name: "push", Ref: "refs/heads/feature/Login#2"}, fixture: "push_branch.json",
		imports: []Key{loginBranch, main}, export: loginBranch, scope: loginBranch,
	},
	{
		name: "push to the default branch imports it once", ev: Event{Name: "push", Ref: "refs/heads/main"}, fixture: "push_branch.json",
		imports: []Key{main}, export: main, scope: main,
	},
	{
		name: "push to the default branch of a squash merge imports the pull request's cache", ev: Event{Name: "push", Ref: "refs/heads/main"},
		fixture: "push_main_squash.json", imports: []Key{main, PRKey(42)}, merged: []Key{PRKey(42)}, export: main, scope: main,
	},
	{
		name: "push to the default branch of a merge commit imports the pull request's cache", ev: Event{Name: "push", Ref: "refs/heads/main"},
		fixture: "push_main_merge_commit.json", imports: []Key{main, PRKey(42)}, merged: []Key{PRKey(42)}, export: main, scope: main,
	},
	{
		name: "cache-from-merged false", ev: Event{Name: "push", Ref: "refs/heads/main"}, fixture: "push_main_squash.json",
		opt: Options{SkipMerged: true}, imports: []Key{main}, export: main, scope: main,
	},
	{
		name: "a squash message on another branch imports nothing merged", ev: Event{Name: "push", Ref: "refs/heads/feature/Login#2"},
		fixture: "push_main_squash.json", imports: []Key{loginBranch, main}, export: loginBranch, scope: loginBranch,
	},
	{
		name: "push tag", ev: Event{Name: "push", Ref: "refs/tags/v1.2.0"}, fixture: "push_tag.json",
		imports: []Key{main}, reason: "tag", scope: TagKey("v1.2.0"),
	},
	{
		name: "push tag, cache-export true", ev: Event{Name: "push", Ref: "refs/tags/v1.2.0"}, fixture: "push_tag.json",
		opt: Options{Export: ExportAlways}, imports: []Key{main}, export: TagKey("v1.2.0"), scope: TagKey("v1.2.0"),
	},
	{
		name: "push with default branch develop from the payload", ev: Event{Name: "push", Ref: "refs/heads/hotfix/crash"}, fixture: "push_develop_default.json",
		imports: []Key{BranchKey("hotfix/crash"), develop}, export: BranchKey("hotfix/crash"), scope: BranchKey("hotfix/crash"),
	},
	{
		name: "default-branch input beats the payload", ev: Event{Name: "push", Ref: "refs/heads/hotfix/crash"}, fixture: "push_develop_default.json",
		opt:     Options{DefaultBranch: "trunk"},
		imports: []Key{BranchKey("hotfix/crash"), BranchKey("trunk")}, export: BranchKey("hotfix/crash"), scope: BranchKey("hotfix/crash"),
	},
	{
		name: "push, cache-export false", ev: Event{Name: "push", Ref: "refs/heads/feature/Login#2"}, fixture: "push_branch.json",
		opt: Options{Export: ExportNever}, imports: []Key{loginBranch, main}, reason: "cache-export is false", scope: loginBranch,
	},
	{
		name: "schedule on the default branch", ev: Event{Name: "schedule", Ref: "refs/heads/main"}, fixture: "schedule.json",
		imports: []Key{main}, export: main, scope: main,
	},
	{
		name: "workflow_dispatch on a branch", ev: Event{Name: "workflow_dispatch", Ref: "refs/heads/release/2.x"}, fixture: "workflow_dispatch.json",
		imports: []Key{BranchKey("release/2.x"), main}, export: BranchKey("release/2.x"), scope: BranchKey("release/2.x"),
	},
	{
		name: "workflow_dispatch on a tag", ev: Event{Name: "workflow_dispatch", Ref: "refs/tags/v1.2.0"}, fixture: "workflow_dispatch.json",
		imports: []Key{main}, reason: "tag", scope: TagKey("v1.2.0"),
	},
	{
		name: "release of a tag", ev: Event{Name: "release", Ref: "refs/tags/v1.2.0"}, fixture: "release.json",
		imports: []Key{main}, reason: "tag", scope: TagKey("v1.2.0"),
	},
	{
		name: "release of a tag, cache-export true", ev: Event{Name: "release", Ref: "refs/tags/v1.2.0"}, fixture: "release.json",
		opt: Options{Export: ExportAlways}, imports: []Key{main}, export: TagKey("v1.2.0"), scope: TagKey("v1.2.0"),
	},
	{
		name: "merge_group", ev: Event{Name: "merge_group", Ref: "refs/heads/" + queue.Name}, fixture: "merge_group.json",
		imports: []Key{BranchKey("release/2.x"), PRKey(42), main}, merged: []Key{PRKey(42)}, reason: "merge queue", scope: queue,
	},
	{
		name: "merge_group, cache-export true", ev: Event{Name: "merge_group", Ref: "refs/heads/" + queue.Name}, fixture: "merge_group.json",
		opt: Options{Export: ExportAlways}, imports: []Key{BranchKey("release/2.x"), PRKey(42), main}, merged: []Key{PRKey(42)}, export: queue, scope: queue,
	},
}

// Pull requests and the events that carry one.
var pullRequestCases = []policyCase{
	{
		name: "pull_request same repository", ev: Event{Name: "pull_request", Ref: "refs/pull/42/merge", HeadRef: "feature/Login#2", BaseRef: "develop"}, fixture: "pull_request.json",
		imports: []Key{PRKey(42), loginBranch, develop, main}, export: PRKey(42), scope: PRKey(42),
	},
	{
		name: "pull_request same repository, head and base from the payload", ev: Event{Name: "pull_request", Ref: "refs/pull/42/merge"}, fixture: "pull_request.json",
		imports: []Key{PRKey(42), loginBranch, develop, main}, export: PRKey(42), scope: PRKey(42),
	},
	{
		name: "default-branch input beats a parsed pull_request payload", ev: Event{Name: "pull_request", Ref: "refs/pull/42/merge"}, fixture: "pull_request.json",
		opt:     Options{DefaultBranch: "trunk"},
		imports: []Key{PRKey(42), loginBranch, develop, BranchKey("trunk")}, export: PRKey(42), scope: PRKey(42),
	},
	{
		name: "pull_request from a fork", ev: Event{Name: "pull_request", Ref: "refs/pull/43/merge", HeadRef: `zzz";echo${IFS}"hello";#`, BaseRef: "develop"}, fixture: "pull_request_fork.json",
		imports: []Key{develop, main}, reason: "fork", untrusted: true, scope: PRKey(43),
	},
	{
		name: "pull_request from a fork, cache-export true is ignored", ev: Event{Name: "pull_request", Ref: "refs/pull/43/merge", HeadRef: `zzz";echo${IFS}"hello";#`, BaseRef: "develop"}, fixture: "pull_request_fork.json",
		opt: Options{Export: ExportAlways}, imports: []Key{develop, main}, reason: "cache-export: true is ignored for untrusted runs", untrusted: true, scope: PRKey(43),
	},
	{
		name: "pull_request from a deleted fork", ev: Event{Name: "pull_request", Ref: "refs/pull/45/merge", HeadRef: "main", BaseRef: "main"}, fixture: "pull_request_deleted_fork.json",
		imports: []Key{main}, reason: "deleted fork", untrusted: true, scope: PRKey(45),
	},
	{
		name: "pull_request from a fork with this repository's name but another id", ev: Event{Name: "pull_request", Ref: "refs/pull/46/merge", HeadRef: "speedup", BaseRef: "develop"}, fixture: "pull_request_renamed_fork.json",
		opt: Options{Export: ExportAlways}, imports: []Key{develop, main}, reason: "pull request from a fork: untrusted code never writes the cache", untrusted: true, scope: PRKey(46),
	},
	{
		name: "pull_request_target", ev: Event{Name: "pull_request_target", Ref: "refs/heads/main", HeadRef: "arm64", BaseRef: "main"}, fixture: "pull_request_target.json",
		imports: []Key{main}, reason: "untrusted", untrusted: true, scope: PRKey(44),
	},
	{
		name: "pull_request_target from the same repository is untrusted too", ev: Event{Name: "pull_request_target", Ref: "refs/heads/develop", HeadRef: "feature/Login#2", BaseRef: "develop"}, fixture: "pull_request.json",
		imports: []Key{develop, main}, reason: "untrusted", untrusted: true, scope: PRKey(42),
	},
	{
		name: "pull_request_review same repository", ev: Event{Name: "pull_request_review", Ref: "refs/pull/42/merge"}, fixture: "pull_request_review.json",
		imports: []Key{PRKey(42), loginBranch, develop, main}, export: PRKey(42), scope: PRKey(42),
	},
	{
		name: "pull_request_review from a fork", ev: Event{Name: "pull_request_review", Ref: "refs/pull/43/merge"}, fixture: "pull_request_review_fork.json",
		opt: Options{Export: ExportAlways}, imports: []Key{develop, main}, reason: "fork", untrusted: true, scope: PRKey(43),
	},
	{
		name: "pull_request_review_comment from a fork", ev: Event{Name: "pull_request_review_comment", Ref: "refs/pull/43/merge"}, fixture: "pull_request_review_comment_fork.json",
		imports: []Key{develop, main}, reason: "fork", untrusted: true, scope: PRKey(43),
	},
	{
		name: "issue_comment on a pull request", ev: Event{Name: "issue_comment", Ref: "refs/heads/main"}, fixture: "issue_comment_pull_request.json",
		opt: Options{Export: ExportAlways}, imports: []Key{main}, reason: "issue_comment on a pull request", untrusted: true, scope: PRKey(43),
	},
	{
		name: "issue_comment on an issue only reads", ev: Event{Name: "issue_comment", Ref: "refs/heads/main"}, fixture: "issue_comment_issue.json",
		imports: []Key{main}, reason: "only reads", scope: main,
	},
	{
		name: "issue_comment on an issue, cache-export true", ev: Event{Name: "issue_comment", Ref: "refs/heads/main"}, fixture: "issue_comment_issue.json",
		opt: Options{Export: ExportAlways}, imports: []Key{main}, export: main, scope: main,
	},
}

// workflow_run keys on the triggering run's head branch, never on GITHUB_REF
// (always the default branch here).
var workflowRunCases = []policyCase{
	{
		name: "workflow_run after a push in this repository, proven the branch's head", ev: Event{Name: "workflow_run", Ref: "refs/heads/main"}, fixture: "workflow_run_push.json",
		prove:   "head",
		imports: []Key{BranchKey("release/2.x"), main}, export: BranchKey("release/2.x"), scope: BranchKey("release/2.x"),
	},
	{
		name: "workflow_run after a push, not yet proven, only reads", ev: Event{Name: "workflow_run", Ref: "refs/heads/main"}, fixture: "workflow_run_push.json",
		imports: []Key{BranchKey("release/2.x"), main}, reason: `workflow_run.head_branch "release/2.x" may name a tag`, scope: BranchKey("release/2.x"),
	},
	{
		name: "workflow_run after a push, the branch's head is another commit", ev: Event{Name: "workflow_run", Ref: "refs/heads/main"}, fixture: "workflow_run_push.json",
		prove:   "branch release/2.x is at 6113728f27ae82c7b1a177c8d03f9e96e0adf246",
		imports: []Key{BranchKey("release/2.x"), main}, reason: "is not proven to be this branch's head (branch release/2.x is at 6113728f", scope: BranchKey("release/2.x"),
	},
	// A tag named main: head_branch is "main", event push, the same repository.
	{
		name: "workflow_run after a push of tag main writes nothing unproven", ev: Event{Name: "workflow_run", Ref: "refs/heads/main"}, fixture: "workflow_run_tag_push.json",
		prove:   "branch main is at 6113728f27ae82c7b1a177c8d03f9e96e0adf246",
		imports: []Key{main}, reason: `workflow_run.head_branch "main" is not proven`, scope: main,
	},
	{
		name: "workflow_run after a push of tag main, cache-export true, without the API", ev: Event{Name: "workflow_run", Ref: "refs/heads/main"}, fixture: "workflow_run_tag_push.json",
		opt: Options{Export: ExportAlways}, imports: []Key{main}, reason: "may name a tag as well as a branch", scope: main,
	},
	{
		name: "workflow_run after a push, cache-export false", ev: Event{Name: "workflow_run", Ref: "refs/heads/main"}, fixture: "workflow_run_push.json",
		opt: Options{Export: ExportNever}, prove: "head", imports: []Key{BranchKey("release/2.x"), main}, reason: "cache-export is false", scope: BranchKey("release/2.x"),
	},
	{
		name: "workflow_run after a workflow_dispatch", ev: Event{Name: "workflow_run", Ref: "refs/heads/main"}, fixture: "workflow_run_dispatch.json",
		prove:   "head",
		imports: []Key{BranchKey("hotfix/crash"), main}, export: BranchKey("hotfix/crash"), scope: BranchKey("hotfix/crash"),
	},
	{
		name: "workflow_run after a release only reads", ev: Event{Name: "workflow_run", Ref: "refs/heads/main"}, fixture: "workflow_run_release.json",
		imports: []Key{BranchKey("v1.2.0"), main}, reason: `triggered by "release" only reads`, scope: BranchKey("v1.2.0"),
	},
	{
		name: "workflow_run after a release, cache-export true, proven", ev: Event{Name: "workflow_run", Ref: "refs/heads/main"}, fixture: "workflow_run_release.json",
		opt: Options{Export: ExportAlways}, prove: "head", imports: []Key{BranchKey("v1.2.0"), main}, export: BranchKey("v1.2.0"), scope: BranchKey("v1.2.0"),
	},
	{
		name: "workflow_run after a fork pull request", ev: Event{Name: "workflow_run", Ref: "refs/heads/main"}, fixture: "workflow_run_fork_pull_request.json",
		imports: []Key{main}, reason: "workflow_run from a fork", untrusted: true,
	},
	{
		name: "workflow_run after a fork pull request, cache-export true is ignored", ev: Event{Name: "workflow_run", Ref: "refs/heads/main"}, fixture: "workflow_run_fork_pull_request.json",
		opt: Options{Export: ExportAlways}, imports: []Key{main}, reason: "ignored for untrusted runs", untrusted: true,
	},
	{
		name: "workflow_run after a same-repository pull request", ev: Event{Name: "workflow_run", Ref: "refs/heads/main"}, fixture: "workflow_run_pull_request.json",
		opt: Options{Export: ExportAlways}, imports: []Key{develop, main}, reason: "triggered by pull_request", untrusted: true, scope: PRKey(42),
	},
	{
		name: "workflow_run whose head repository has this name but another id", ev: Event{Name: "workflow_run", Ref: "refs/heads/main"}, fixture: "workflow_run_push_other_repository.json",
		opt: Options{Export: ExportAlways}, imports: []Key{main}, reason: "workflow_run from a fork", untrusted: true,
	},
	{
		name: "workflow_run without a head repository", ev: Event{Name: "workflow_run", Ref: "refs/heads/main"}, fixture: "workflow_run_no_head_repository.json",
		imports: []Key{main}, reason: "no head repository", untrusted: true,
	},
	{
		name: "workflow_run with another event's payload", ev: Event{Name: "workflow_run", Ref: "refs/heads/main"}, fixture: "push_branch.json",
		imports: []Key{main}, reason: "has no workflow_run", untrusted: true,
	},
}

// Every other event reads, and writes only when asked, unless it shows a fork.
var otherEventCases = []policyCase{
	// check_run and check_suite key on the suite's head_branch, never on
	// GITHUB_REF (the default branch); GitHub sends null for a fork's commit.
	{
		name: "check_run of a same-repository pull request only reads", ev: Event{Name: "check_run", Ref: "refs/heads/main"}, fixture: "check_run.json",
		imports: []Key{loginBranch, main}, reason: "check_run event only reads", scope: loginBranch,
	},
	{
		name: "check_run, cache-export true, proven the branch's head", ev: Event{Name: "check_run", Ref: "refs/heads/main"}, fixture: "check_run.json",
		opt: Options{Export: ExportAlways}, prove: "head", imports: []Key{loginBranch, main}, export: loginBranch, scope: loginBranch,
	},
	{
		name: "check_run, cache-export true, unproven", ev: Event{Name: "check_run", Ref: "refs/heads/main"}, fixture: "check_run.json",
		opt: Options{Export: ExportAlways}, imports: []Key{loginBranch, main}, reason: "check_run.check_suite.head_branch", scope: loginBranch,
	},
	{
		name: "check_run for a fork's commit", ev: Event{Name: "check_run", Ref: "refs/heads/main"}, fixture: "check_run_fork.json",
		opt: Options{Export: ExportAlways}, prove: "head", imports: []Key{main}, reason: "check_run.check_suite.head_branch is null", untrusted: true,
	},
	{
		name: "check_suite after a push to a branch", ev: Event{Name: "check_suite", Ref: "refs/heads/main"}, fixture: "check_suite.json",
		imports: []Key{BranchKey("release/2.x"), main}, reason: "check_suite event only reads", scope: BranchKey("release/2.x"),
	},
	{
		name: "check_suite after a push to a branch, cache-export true, proven", ev: Event{Name: "check_suite", Ref: "refs/heads/main"}, fixture: "check_suite.json",
		opt: Options{Export: ExportAlways}, prove: "head", imports: []Key{BranchKey("release/2.x"), main}, export: BranchKey("release/2.x"), scope: BranchKey("release/2.x"),
	},
	{
		name: "check_suite for a fork's commit", ev: Event{Name: "check_suite", Ref: "refs/heads/main"}, fixture: "check_suite_fork.json",
		opt: Options{Export: ExportAlways}, prove: "head", imports: []Key{main}, reason: "check_suite.head_branch is null", untrusted: true,
	},
	// status names the branches of this repository holding the commit; none for a fork's.
	{
		name: "status of a branch's head only reads", ev: Event{Name: "status", Ref: "refs/heads/main"}, fixture: "status.json",
		imports: []Key{BranchKey("release/2.x"), main}, reason: "status event only reads", scope: BranchKey("release/2.x"),
	},
	{
		name: "status of a branch's head, cache-export true", ev: Event{Name: "status", Ref: "refs/heads/main"}, fixture: "status.json",
		opt: Options{Export: ExportAlways}, imports: []Key{BranchKey("release/2.x"), main}, export: BranchKey("release/2.x"), scope: BranchKey("release/2.x"),
	},
	{
		name: "status of a commit at no branch's head", ev: Event{Name: "status", Ref: "refs/heads/main"}, fixture: "status_not_head.json",
		opt: Options{Export: ExportAlways}, imports: []Key{main}, reason: "at the head of none",
	},
	{
		name: "status for a fork's commit", ev: Event{Name: "status", Ref: "refs/heads/main"}, fixture: "status_fork.json",
		opt: Options{Export: ExportAlways}, imports: []Key{main}, reason: "lists no branch", untrusted: true,
	},
	{
		name: "repository_dispatch only reads", ev: Event{Name: "repository_dispatch", Ref: "refs/heads/main"}, fixture: "repository_dispatch.json",
		imports: []Key{main}, reason: "only reads", scope: main,
	},
	{
		name: "repository_dispatch, cache-export true", ev: Event{Name: "repository_dispatch", Ref: "refs/heads/main"}, fixture: "repository_dispatch.json",
		opt: Options{Export: ExportAlways}, imports: []Key{main}, export: main, scope: main,
	},
	{
		name: "deployment of a branch reads it", ev: Event{Name: "deployment", Ref: "refs/heads/release/2.x"}, fixture: "deployment.json",
		imports: []Key{BranchKey("release/2.x"), main}, reason: "only reads", scope: BranchKey("release/2.x"),
	},
	{
		name: "deployment of a branch, cache-export true", ev: Event{Name: "deployment", Ref: "refs/heads/release/2.x"}, fixture: "deployment.json",
		opt: Options{Export: ExportAlways}, imports: []Key{BranchKey("release/2.x"), main}, export: BranchKey("release/2.x"), scope: BranchKey("release/2.x"),
	},
	{
		name: "release without a tag ref", ev: Event{Name: "release"}, fixture: "release.json",
		opt: Options{Export: ExportAlways}, imports: []Key{main}, reason: "no branch or tag",
	},
	{
		name: "pull_request_review_thread shows the fork it is about", ev: Event{Name: "pull_request_review_thread", Ref: "refs/pull/43/merge"}, fixture: "pull_request_review_thread_fork.json",
		opt: Options{Export: ExportAlways}, imports: []Key{main}, reason: "pull_request_review_thread payload shows a fork", untrusted: true,
	},
	{
		name: "unknown future event carrying a fork pull request", ev: Event{Name: "pull_request_preview", Ref: "refs/heads/main"}, fixture: "pull_request_fork.json",
		opt: Options{Export: ExportAlways}, imports: []Key{main}, reason: "shows a fork", untrusted: true,
	},
	{
		name: "unknown future event carrying a same-repository pull request only reads", ev: Event{Name: "pull_request_preview", Ref: "refs/heads/main"}, fixture: "pull_request.json",
		imports: []Key{main}, reason: "pull_request_preview event only reads", scope: main,
	},
	{
		name: "unknown future event carrying a fork's workflow run", ev: Event{Name: "workflow_run_preview", Ref: "refs/heads/main"}, fixture: "workflow_run_fork_pull_request.json",
		opt: Options{Export: ExportAlways}, imports: []Key{main}, reason: "shows a fork", untrusted: true,
	},
}

// An empty or unreadable payload fails nothing: GITHUB_REF and the inputs
// stand in where they can, and trust fails closed where they cannot.
var badPayloadCases = []policyCase{
	{
		name: "push without a payload", ev: Event{Name: "push", Ref: "refs/heads/feature"},
		imports: []Key{BranchKey("feature"), main}, export: BranchKey("feature"), scope: BranchKey("feature"), note: `is empty: the cache keys come from GITHUB_REF and the inputs, and the default branch is taken to be "main"`,
	},
	{
		name: "push with a payload that is not JSON", ev: Event{Name: "push", Ref: "refs/heads/feature", Payload: []byte("not json\n::warning::x")},
		imports: []Key{BranchKey("feature"), main}, export: BranchKey("feature"), scope: BranchKey("feature"), note: "is not JSON",
	},
	{
		name: "push with a payload of the wrong shape", ev: Event{Name: "push", Ref: "refs/heads/feature", Payload: []byte(`{"ref": "refs/heads/feature", "repository": {"id": "817326519", "default_branch": "develop"}}`)},
		imports: []Key{BranchKey("feature"), main}, export: BranchKey("feature"), scope: BranchKey("feature"), note: "is not shaped like a GitHub event",
	},
	{
		name: "push with a truncated payload and the default-branch input", ev: Event{Name: "push", Ref: "refs/heads/feature/Login#2"}, fixture: "push_branch.json", cut: 200,
		opt: Options{DefaultBranch: "trunk"}, imports: []Key{loginBranch, BranchKey("trunk")}, export: loginBranch, scope: loginBranch, note: "is not JSON",
	},
	{
		name: "pull_request with a truncated payload", ev: Event{Name: "pull_request", Ref: "refs/pull/42/merge", HeadRef: "feature/Login#2", BaseRef: "develop"}, fixture: "pull_request.json", cut: 1000,
		imports: []Key{develop, main}, reason: "payload cannot be read", untrusted: true, scope: PRKey(42), note: "is not JSON",
	},
	{
		name: "pull_request without a payload", ev: Event{Name: "pull_request", Ref: "refs/pull/7/merge", HeadRef: "feat", BaseRef: "main"},
		opt: Options{Export: ExportAlways}, imports: []Key{main}, reason: "treated as coming from a fork", untrusted: true, scope: PRKey(7), note: "is empty",
	},
	{
		name: "pull_request without a payload or a number", ev: Event{Name: "pull_request", Ref: "refs/heads/feature", BaseRef: "develop"},
		imports: []Key{develop, main}, reason: "fork", untrusted: true, note: "is empty",
	},
	{
		name: "pull_request payload without a head repository", ev: Event{Name: "pull_request", Ref: "refs/pull/8/merge", Payload: []byte(`{"number": 8, "pull_request": {"number": 8, "head": {"ref": "x"}, "base": {"ref": "main", "repo": {"id": 817326519}}}}`)},
		imports: []Key{main}, reason: "no head repository", untrusted: true, scope: PRKey(8),
	},
	{
		name: "pull_request payload without a base repository", ev: Event{Name: "pull_request", Ref: "refs/pull/8/merge", Payload: []byte(`{"number": 8, "pull_request": {"number": 8, "head": {"ref": "x", "repo": {"id": 817326519}}, "base": {"ref": "main"}}}`)},
		imports: []Key{main}, reason: "does not give both repository ids", untrusted: true, scope: PRKey(8),
	},
	{
		name: "pull_request_target with an unreadable payload", ev: Event{Name: "pull_request_target", Ref: "refs/heads/main", BaseRef: "main", Payload: []byte("{")},
		imports: []Key{main}, reason: "pull_request_target", untrusted: true, note: "is not JSON",
	},
	{
		name: "workflow_run without a payload", ev: Event{Name: "workflow_run", Ref: "refs/heads/main"},
		opt: Options{Export: ExportAlways}, imports: []Key{main}, reason: "cannot be read", untrusted: true, note: "is empty",
	},
	{
		name: "issue_comment without a payload", ev: Event{Name: "issue_comment", Ref: "refs/heads/main"},
		imports: []Key{main}, reason: "may be on a pull request", untrusted: true, note: "is empty",
	},
	{
		name: "check_run without a payload", ev: Event{Name: "check_run", Ref: "refs/heads/main"},
		opt: Options{Export: ExportAlways}, imports: []Key{main}, reason: "cannot be traced to a branch", untrusted: true, note: "is empty",
	},
	{
		name: "status without a payload", ev: Event{Name: "status", Ref: "refs/heads/main"},
		opt: Options{Export: ExportAlways}, imports: []Key{main}, reason: "cannot be traced to a branch", untrusted: true, note: "is empty",
	},
	{
		name: "merge_group with an unreadable payload", ev: Event{Name: "merge_group", Ref: "refs/heads/" + queue.Name, Payload: []byte("{")},
		imports: []Key{PRKey(42), main}, merged: []Key{PRKey(42)}, reason: "merge queue", scope: queue, note: "is not JSON",
	},
}

func TestDecide(t *testing.T) {
	for _, group := range []struct {
		name  string
		cases []policyCase
	}{
		{"trusted", trustedCases},
		{"pull requests", pullRequestCases},
		{"workflow_run", workflowRunCases},
		{"other events", otherEventCases},
		{"bad payloads", badPayloadCases},
	} {
		for _, tt := range group.cases {
			t.Run(group.name+"/"+tt.name, func(t *testing.T) {
				if tt.fixture != "" {
					tt.ev.Payload = fixture(t, tt.fixture)
				}
				if tt.cut > 0 {
					tt.ev.Payload = tt.ev.Payload[:tt.cut]
				}
				checkCase(t, tt)
			})
		}
	}
}

func checkCase(t *testing.T, tt policyCase) {
	t.Helper()
	d, err := Decide(tt.ev, tt.opt)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	if tt.prove != "" {
		d = d.Prove(tt.prove == "head", tt.prove)
	}
	// An untrusted run loses push, secrets and entitlements (no grants here)
	// and uses the cache registry's credentials only.
	if d.Push == tt.untrusted || d.Secrets == tt.untrusted || d.Entitlements == tt.untrusted || d.RestrictCredentials != tt.untrusted {
		t.Errorf("Push %v, Secrets %v, Entitlements %v, RestrictCredentials %v; want the first three %v and the last %v",
			d.Push, d.Secrets, d.Entitlements, d.RestrictCredentials, !tt.untrusted, tt.untrusted)
	}
	plan, err := d.Plan(testRepo)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	if want := refs("", "", tt.imports...); !slices.Equal(plan.Imports, want) {
		t.Errorf("Imports:\n got %q\nwant %q", plan.Imports, want)
	}
	if !slices.Equal(d.Reads, tt.imports) {
		t.Errorf("Reads = %v, want %v", d.Reads, tt.imports)
	}
	if tt.export.IsZero() {
		if plan.Export != "" || plan.ExportTag != "" || d.Writes {
			t.Errorf("Export = %q, ExportTag = %q, Writes = %v; want none", plan.Export, plan.ExportTag, d.Writes)
		}
		if tt.reason == "" || !strings.Contains(plan.ExportReason, tt.reason) {
			t.Errorf("ExportReason = %q, want it to contain %q", plan.ExportReason, tt.reason)
		}
	} else {
		wantTag := Tag(DefaultPrefix, tt.export, "", "")
		if plan.Export != testRepo+":"+wantTag || plan.ExportTag != wantTag || !d.Writes {
			t.Errorf("Export = %q, ExportTag = %q, Writes = %v; want %q", plan.Export, plan.ExportTag, d.Writes, testRepo+":"+wantTag)
		}
		if plan.ExportReason != "" {
			t.Errorf("ExportReason = %q, want empty when exporting", plan.ExportReason)
		}
	}
	// The cache mounts follow the same keys: the same reads but a merged pull
	// request's, the export only with the cache's.
	var wantMounts []string
	for _, k := range tt.imports {
		if !slices.Contains(tt.merged, k) {
			wantMounts = append(wantMounts, testRepo+":"+MountsTag(DefaultPrefix, k, "", ""))
		}
	}
	if !slices.Equal(plan.MountsImports, wantMounts) {
		t.Errorf("MountsImports:\n got %q\nwant %q", plan.MountsImports, wantMounts)
	}
	wantMountsExport := ""
	if !tt.export.IsZero() {
		wantMountsExport = testRepo + ":" + MountsTag(DefaultPrefix, tt.export, "", "")
	}
	if plan.MountsExport != wantMountsExport {
		t.Errorf("MountsExport = %q, want %q", plan.MountsExport, wantMountsExport)
	}
	if plan.Untrusted != tt.untrusted || d.Untrusted != tt.untrusted {
		t.Errorf("Untrusted = %v (decision %v), want %v", plan.Untrusted, d.Untrusted, tt.untrusted)
	}
	if plan.Scope != tt.scope || d.Own != tt.scope {
		t.Errorf("Scope = %v (decision %v), want %v", plan.Scope, d.Own, tt.scope)
	}
	switch {
	case tt.note == "" && len(d.Notes) > 0:
		t.Errorf("Notes = %q, want none", d.Notes)
	case tt.note != "" && !slices.ContainsFunc(d.Notes, func(n string) bool { return strings.Contains(n, tt.note) }):
		t.Errorf("Notes = %q, want one containing %q", d.Notes, tt.note)
	}
	// Reasons and notes reach the log: payload text must never break a line there.
	for _, s := range append([]string{plan.ExportReason}, d.Notes...) {
		if strings.ContainsAny(s, "\r\n") {
			t.Errorf("message %q spans lines", s)
		}
	}
	for _, r := range append(slices.Clone(plan.Imports), plan.Export) {
		if r != "" && !refRE.MatchString(r) {
			t.Errorf("ref %q is not %s:<valid tag>", r, testRepo)
		}
	}

	// The offline plan keeps the trust and drops every reference.
	off, err := d.Plan("")
	if err != nil {
		t.Fatalf(`Plan(""): %v`, err)
	}
	if len(off.Imports) > 0 || off.Export != "" || off.ExportTag != "" || off.Untrusted != tt.untrusted || off.Scope != tt.scope || off.ExportReason == "" {
		t.Errorf(`Plan("") = %+v, want no refs, Untrusted %v, Scope %v and a reason`, off, tt.untrusted, tt.scope)
	}
}

// Whatever event name a payload that shows a fork (a head repository id that
// differs, or a null head repository) arrives under, only events GitHub keys on
// a ref of this repository (push, schedule, workflow_dispatch, release,
// merge_group) may export: everything else fails closed.
func TestForkPayloadsNeverExport(t *testing.T) {
	fixtures := []string{
		"pull_request_fork.json", "pull_request_deleted_fork.json", "pull_request_renamed_fork.json",
		"pull_request_target.json", "pull_request_review_fork.json", "pull_request_review_comment_fork.json",
		"pull_request_review_thread_fork.json", "workflow_run_fork_pull_request.json",
		"workflow_run_push_other_repository.json",
	}
	events := []string{
		"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment",
		"pull_request_review_thread", "workflow_run", "issue_comment", "check_run", "check_suite",
		"deployment", "repository_dispatch", "status", "", "some_future_event",
	}
	for _, f := range fixtures {
		payload := fixture(t, f)
		for _, name := range events {
			for _, ref := range []string{"refs/heads/main", "refs/pull/43/merge"} {
				d, err := Decide(Event{Name: name, Ref: ref, HeadRef: "main", BaseRef: "main", Payload: payload}, Options{Export: ExportAlways})
				if err != nil {
					t.Fatalf("%s as %q: %v", f, name, err)
				}
				plan, err := d.Plan(testRepo)
				if err != nil {
					t.Fatal(err)
				}
				if !d.Untrusted || d.Writes || plan.Export != "" {
					t.Errorf("%s as %q on %s: Untrusted %v, Export %q; want untrusted, no export", f, name, ref, d.Untrusted, plan.Export)
				}
			}
		}
	}
}

// The exact strings matter to users (they show up in ECR), so pin two plans:
// one without a platform (the tags every earlier version wrote) and one with.
func TestPlanLiteralRefs(t *testing.T) {
	ev := Event{Name: "push", Ref: "refs/heads/feature/Login#2", Payload: fixture(t, "push_branch.json")}
	tests := []struct {
		opt     Options
		imports []string
		export  string
	}{
		{
			opt: Options{Scope: "linux/arm64"},
			imports: []string{
				"127.0.0.1:5000/app:cache-feature-Login-2-linux-arm64-bfa9e91715f6b2ee",
				"127.0.0.1:5000/app:cache-main-linux-arm64-a4ae4511f495c756",
			},
			export: "127.0.0.1:5000/app:cache-feature-Login-2-linux-arm64-bfa9e91715f6b2ee",
		},
		{
			opt: Options{Scope: "api", Platform: "linux/arm64"},
			imports: []string{
				"127.0.0.1:5000/app:cache-feature-Login-2-api-linux-arm64-48302c21594b7bea",
				"127.0.0.1:5000/app:cache-main-api-linux-arm64-599b75c05ca799c6",
			},
			export: "127.0.0.1:5000/app:cache-feature-Login-2-api-linux-arm64-48302c21594b7bea",
		},
	}
	for _, tt := range tests {
		d, err := Decide(ev, tt.opt)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := d.Plan("127.0.0.1:5000/app")
		if err != nil {
			t.Fatal(err)
		}
		want := Plan{Imports: tt.imports, Export: tt.export, ExportTag: tt.export[len("127.0.0.1:5000/app:"):], Scope: loginBranch}
		if !slices.Equal(plan.Imports, want.Imports) || plan.Export != want.Export || plan.ExportTag != want.ExportTag ||
			plan.Scope != want.Scope || plan.ExportReason != "" || plan.Untrusted {
			t.Errorf("options %+v, plan:\n got %+v\nwant %+v", tt.opt, plan, want)
		}
	}
}

func TestPlanScopePlatformAndExtraFrom(t *testing.T) {
	ev := Event{Name: "pull_request", Ref: "refs/pull/42/merge", Payload: fixture(t, "pull_request.json")}
	extra := []string{
		"ghcr.io/octo-org/app:buildcache",
		"",
		testRepo + ":" + Tag(DefaultPrefix, main, "arm64", ""), // already imported
		" ghcr.io/octo-org/app:buildcache ",                    // duplicate after trimming
		"docker.io/octo/app:cache",
	}
	plan := mustPlan(t, ev, Options{Prefix: DefaultPrefix, Scope: "arm64", ExtraFrom: extra})
	want := append(refs("arm64", "", PRKey(42), loginBranch, develop, main), "ghcr.io/octo-org/app:buildcache", "docker.io/octo/app:cache")
	if !slices.Equal(plan.Imports, want) {
		t.Errorf("Imports:\n got %q\nwant %q", plan.Imports, want)
	}
	if wantExport := refs("arm64", "", PRKey(42))[0]; plan.Export != wantExport {
		t.Errorf("Export = %q, want %q", plan.Export, wantExport)
	}

	// Matrix jobs sharing one repository never share a tag: not across scopes,
	// not across platforms of one branch, not between a scope and a platform
	// that read alike.
	exports := map[string]Options{}
	for _, opt := range []Options{
		{Scope: "arm64"}, {Scope: "amd64"}, {},
		{Platform: "linux/amd64"}, {Platform: "linux/arm64"},
		{Scope: "api", Platform: "linux/amd64"}, {Scope: "api", Platform: "linux/arm64"},
		{Scope: "linux/arm64"}, {Scope: "api/linux/arm64"},
	} {
		p := mustPlan(t, ev, opt)
		if prev, ok := exports[p.Export]; ok {
			t.Errorf("options %+v and %+v export to the same ref %q", prev, opt, p.Export)
		}
		exports[p.Export] = opt
		if opt.Platform != "" && !strings.Contains(p.ExportTag, "-"+slug(opt.Platform)+"-") {
			t.Errorf("tag %q does not show platform %q", p.ExportTag, opt.Platform)
		}
	}
}

func mustPlan(t *testing.T, ev Event, opt Options) Plan {
	t.Helper()
	d, err := Decide(ev, opt)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := d.Plan(testRepo)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// An offline plan for a trusted run says why nothing is written.
func TestPlanOffline(t *testing.T) {
	d, err := Decide(Event{Name: "push", Ref: "refs/heads/main", Payload: fixture(t, "push_branch.json")}, Options{ExtraFrom: []string{"ghcr.io/o/a:c"}})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := d.Plan("")
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Imports) > 0 || plan.Export != "" || plan.Untrusted || plan.Scope != main || !strings.Contains(plan.ExportReason, "no cache repository") {
		t.Errorf(`Plan("") = %+v`, plan)
	}
}

func TestDecideErrors(t *testing.T) {
	ev := Event{Name: "push", Ref: "refs/heads/main"}
	tests := []struct {
		name string
		opt  Options
		want []string
	}{
		{"invalid prefix", Options{Prefix: "-x"}, []string{"cache-tag-prefix"}},
		{"invalid export mode", Options{Export: "yes"}, []string{"cache-export"}},
		{"both at once", Options{Prefix: "a b", Export: "maybe"}, []string{"cache-tag-prefix", "cache-export"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Decide(ev, tt.opt)
			if err == nil {
				t.Fatalf("Decide = %+v, want an error", d)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	d, err := Decide(Event{Name: "push", Ref: "refs/heads/main"}, Options{DefaultBranch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	for repo, want := range map[string]string{
		"127.0.0.1:5000/app:latest": "must not include a tag",
		"r/app@sha256:00":           "digest",
		"r/my app":                  "spaces",
	} {
		if plan, err := d.Plan(repo); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Plan(%q) = %+v, %v; want an error containing %q", repo, plan, err, want)
		}
	}
	// A port is not a tag.
	if _, err := d.Plan("127.0.0.1:5000/app"); err != nil {
		t.Errorf("Plan(host:port/app): %v", err)
	}
}

func TestParseExportMode(t *testing.T) {
	for in, want := range map[string]ExportMode{"": ExportAuto, "auto": ExportAuto, " TRUE ": ExportAlways, "false": ExportNever} {
		if got, err := ParseExportMode(in); err != nil || got != want {
			t.Errorf("ParseExportMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseExportMode("yes"); err == nil {
		t.Error(`ParseExportMode("yes") succeeded`)
	}
}

func TestMergedByMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		message string
		want    int
	}{
		{"Fix login redirect (#42)", 42},
		{"Fix login redirect (#42)\n\n* Fix login redirect", 42},
		{"Merge pull request #7 from octo-org/feature/Login#2\n\nFix login redirect", 7},
		{"Revert \"Fix login redirect (#42)\" (#43)", 43},
		{"Fix login redirect", 0},
		{"Fixes #42", 0},
		{"See (#42) for details", 0},
		{"Merge branch 'main' into feature", 0},
		{"Bump (#0)", 0},
	} {
		if got := mergedByMessage(tc.message); got != tc.want {
			t.Errorf("mergedByMessage(%q) = %d, want %d", tc.message, got, tc.want)
		}
	}
}

// A fork's commit reaches check_run, check_suite and status with nothing that
// names the fork (GitHub's documented shapes: head_branch null and
// pull_requests [], branches []): nothing proves a branch of this repository,
// so the run is untrusted and writes nothing, whatever cache-export says and
// even were the API asked.
func TestForkCommitEventsAreUntrusted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ event, fixture string }{
		{"check_suite", "check_suite_fork.json"},
		{"check_run", "check_run_fork.json"},
		{"status", "status_fork.json"},
	} {
		for _, mode := range []ExportMode{ExportAuto, ExportAlways} {
			d, err := Decide(Event{Name: tc.event, Ref: "refs/heads/main", Payload: fixture(t, tc.fixture)}, Options{Export: mode})
			if err != nil {
				t.Fatal(err)
			}
			d = d.Prove(true, "")
			if !d.Untrusted || d.Writes || d.Push || d.Secrets || d.Entitlements || !d.Claim.IsZero() {
				t.Errorf("%s (%s), cache-export %s: %+v; want untrusted, nothing written, pushed or passed", tc.event, tc.fixture, mode, d)
			}
		}
	}
}

// Grants give an untrusted run exactly what they name, never a cache write.
func TestGrants(t *testing.T) {
	t.Parallel()
	ev := Event{Name: "pull_request", Ref: "refs/pull/43/merge", Payload: fixture(t, "pull_request_fork.json")}
	for _, g := range []Grants{{}, {Push: true}, {Secrets: true}, {Entitlements: true}, {Push: true, Secrets: true, Entitlements: true}} {
		d, err := Decide(ev, Options{Export: ExportAlways, Grants: g})
		if err != nil {
			t.Fatal(err)
		}
		if d.Push != g.Push || d.Secrets != g.Secrets || d.Entitlements != g.Entitlements || !d.RestrictCredentials || d.Writes {
			t.Errorf("grants %+v: Push %v, Secrets %v, Entitlements %v, RestrictCredentials %v, Writes %v", g, d.Push, d.Secrets, d.Entitlements, d.RestrictCredentials, d.Writes)
		}
	}
	withheld := Decision{Reason: "pull request from a fork"}.EntitlementsWithheld([]string{"allow: security.insecure", "network: host"})
	if !strings.Contains(withheld, "allow: security.insecure, network: host withheld") || !strings.Contains(withheld, "untrusted-entitlements: true") {
		t.Errorf("EntitlementsWithheld = %q", withheld)
	}
}

// ForPlatform keys the same decision's tags on a platform: trust, reads and
// the write stay as decided.
func TestForPlatform(t *testing.T) {
	t.Parallel()
	d, err := Decide(Event{Name: "push", Ref: "refs/heads/main", Payload: fixture(t, "push_branch.json")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := d.ForPlatform("linux/arm64").Plan(testRepo)
	if err != nil {
		t.Fatal(err)
	}
	if want := refs("", "linux/arm64", main)[0]; plan.Export != want || !slices.Equal(plan.Imports, []string{want}) {
		t.Errorf("plan %+v, want export and import %q", plan, want)
	}
}

func TestCheckImageTags(t *testing.T) {
	t.Parallel()
	const host = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	cacheRepo := host + "/app"
	ok := []string{cacheRepo + ":latest", cacheRepo + ":cached", cacheRepo + ":v1-cache-main", host + "/other:cache-main-a4ae4511f495c756", cacheRepo + "@sha256:00"}
	if err := CheckImageTags("", cacheRepo, ok); err != nil {
		t.Errorf("CheckImageTags(%q) = %v, want nil", ok, err)
	}
	bad := []string{cacheRepo + ":cache-main-a4ae4511f495c756", cacheRepo + ":cache-mnt-main-0123456789abcdef", cacheRepo + ":latest"}
	err := CheckImageTags("", cacheRepo, bad)
	if err == nil || !strings.Contains(err.Error(), bad[0]) || !strings.Contains(err.Error(), bad[1]) || strings.Contains(err.Error(), bad[2]) ||
		!strings.Contains(err.Error(), "cache-tag-prefix") {
		t.Errorf("CheckImageTags(%q) = %v; want an error naming the first two and how to fix it", bad, err)
	}
	if err := CheckImageTags("ci", cacheRepo, []string{cacheRepo + ":cache-main"}); err != nil {
		t.Errorf("prefix ci: %v", err)
	}
	if err := CheckImageTags("ci", cacheRepo, []string{cacheRepo + ":ci-main"}); err == nil {
		t.Error("prefix ci: ci-main accepted")
	}
}

// A rebase merge's pull request comes from the GitHub API: the decision asks
// about the pushed head, and the answer goes after the branch's own key.
func TestRebaseMergesPullRequestComesFromTheAPI(t *testing.T) {
	t.Parallel()
	d, err := Decide(Event{Name: "push", Ref: "refs/heads/main", Payload: fixture(t, "push_branch.json")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.MergeCommit == "" || len(d.Merged) != 0 {
		t.Fatalf("MergeCommit %q, Merged %v; want the head asked about, none merged yet", d.MergeCommit, d.Merged)
	}
	main := BranchKey("main")
	d = d.WithMerged([]int{7})
	if !slices.Equal(d.Reads, []Key{main, PRKey(7)}) || !slices.Equal(d.Merged, []int{7}) || d.MergeCommit != "" {
		t.Errorf("after the API's answer: reads %v, merged %v, MergeCommit %q; want [main pr-7], [7], none left to ask", d.Reads, d.Merged, d.MergeCommit)
	}
}

// Only a commit id from the payload is asked about; the other pushed commits'
// messages, which a rebase merge's author wrote, name no merged pull request.
func TestMergeCommitComesFromThePushedHead(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, payload, want string
	}{
		{"a rebase merge's head", `{"repository":{"default_branch":"main"},"head_commit":{"id":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","message":"Keep the query string"},
			"commits":[{"id":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","message":"Borrow another cache (#77)"}]}`, "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"},
		{"not a commit id", `{"repository":{"default_branch":"main"},"head_commit":{"id":"0d1a26e\n::error::x","message":"x"}}`, ""},
	} {
		d, err := Decide(Event{Name: "push", Ref: "refs/heads/main", Payload: []byte(tc.payload)}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if d.MergeCommit != tc.want || len(d.Merged) != 0 {
			t.Errorf("%s: MergeCommit %q, Merged %v; want %q and none", tc.name, d.MergeCommit, d.Merged, tc.want)
		}
	}
}
