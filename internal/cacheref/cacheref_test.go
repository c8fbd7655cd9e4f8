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

// refs maps keys to the full refs Derive should produce with the default prefix.
func refs(scope string, keys ...Key) []string {
	var out []string
	for _, k := range keys {
		out = append(out, testRepo+":"+Tag(DefaultPrefix, k, scope))
	}
	return out
}

func TestDeriveFixtures(t *testing.T) {
	main, develop := BranchKey("main"), BranchKey("develop")
	queue := BranchKey("gh-readonly-queue/release/2.x/pr-42-9049f1265b7d61be4a8904a9a27120d2064dab3b")
	tests := []struct {
		name      string
		ev        Event
		fixture   string
		opt       Options // Repository is filled in
		imports   []Key
		export    Key    // zero: no export expected
		reason    string // substring of ExportReason when export is zero
		untrusted bool
		scope     Key
	}{
		{
			name:    "push branch",
			ev:      Event{Name: "push", Ref: "refs/heads/feature/Login#2"},
			fixture: "push_branch.json",
			imports: []Key{BranchKey("feature/Login#2"), main},
			export:  BranchKey("feature/Login#2"),
			scope:   BranchKey("feature/Login#2"),
		},
		{
			name:    "push to the default branch imports it once",
			ev:      Event{Name: "push", Ref: "refs/heads/main"},
			fixture: "push_branch.json",
			imports: []Key{main},
			export:  main,
			scope:   main,
		},
		{
			name:    "push tag",
			ev:      Event{Name: "push", Ref: "refs/tags/v1.2.0"},
			fixture: "push_tag.json",
			imports: []Key{main},
			reason:  "tag",
			scope:   TagKey("v1.2.0"),
		},
		{
			name:    "push tag, cache-export true",
			ev:      Event{Name: "push", Ref: "refs/tags/v1.2.0"},
			fixture: "push_tag.json",
			opt:     Options{Export: ExportAlways},
			imports: []Key{main},
			export:  TagKey("v1.2.0"),
			scope:   TagKey("v1.2.0"),
		},
		{
			name:    "push with default branch develop from the payload",
			ev:      Event{Name: "push", Ref: "refs/heads/hotfix/crash"},
			fixture: "push_develop_default.json",
			imports: []Key{BranchKey("hotfix/crash"), develop},
			export:  BranchKey("hotfix/crash"),
			scope:   BranchKey("hotfix/crash"),
		},
		{
			name:    "default-branch input beats the payload",
			ev:      Event{Name: "push", Ref: "refs/heads/hotfix/crash"},
			fixture: "push_develop_default.json",
			opt:     Options{DefaultBranch: "trunk"},
			imports: []Key{BranchKey("hotfix/crash"), BranchKey("trunk")},
			export:  BranchKey("hotfix/crash"),
			scope:   BranchKey("hotfix/crash"),
		},
		{
			name:    "default-branch input beats a parsed pull_request payload",
			ev:      Event{Name: "pull_request", Ref: "refs/pull/42/merge"},
			fixture: "pull_request.json",
			opt:     Options{DefaultBranch: "trunk"},
			imports: []Key{PRKey(42), BranchKey("feature/Login#2"), develop, BranchKey("trunk")},
			export:  PRKey(42),
			scope:   PRKey(42),
		},
		{
			name:    "push, cache-export false",
			ev:      Event{Name: "push", Ref: "refs/heads/feature/Login#2"},
			fixture: "push_branch.json",
			opt:     Options{Export: ExportNever},
			imports: []Key{BranchKey("feature/Login#2"), main},
			reason:  "cache-export is false",
			scope:   BranchKey("feature/Login#2"),
		},
		{
			name:    "pull_request same repository",
			ev:      Event{Name: "pull_request", Ref: "refs/pull/42/merge", HeadRef: "feature/Login#2", BaseRef: "develop"},
			fixture: "pull_request.json",
			imports: []Key{PRKey(42), BranchKey("feature/Login#2"), develop, main},
			export:  PRKey(42),
			scope:   PRKey(42),
		},
		{
			name:    "pull_request same repository, head and base from the payload",
			ev:      Event{Name: "pull_request", Ref: "refs/pull/42/merge"},
			fixture: "pull_request.json",
			imports: []Key{PRKey(42), BranchKey("feature/Login#2"), develop, main},
			export:  PRKey(42),
			scope:   PRKey(42),
		},
		{
			name:      "pull_request from a fork",
			ev:        Event{Name: "pull_request", Ref: "refs/pull/43/merge", HeadRef: `zzz";echo${IFS}"hello";#`, BaseRef: "develop"},
			fixture:   "pull_request_fork.json",
			imports:   []Key{develop, main},
			reason:    "fork",
			untrusted: true,
			scope:     PRKey(43),
		},
		{
			name:      "pull_request from a fork, cache-export true is ignored",
			ev:        Event{Name: "pull_request", Ref: "refs/pull/43/merge", HeadRef: `zzz";echo${IFS}"hello";#`, BaseRef: "develop"},
			fixture:   "pull_request_fork.json",
			opt:       Options{Export: ExportAlways},
			imports:   []Key{develop, main},
			reason:    "cache-export: true is ignored for untrusted runs",
			untrusted: true,
			scope:     PRKey(43),
		},
		{
			name:      "pull_request from a deleted fork",
			ev:        Event{Name: "pull_request", Ref: "refs/pull/45/merge", HeadRef: "main", BaseRef: "main"},
			fixture:   "pull_request_deleted_fork.json",
			imports:   []Key{main},
			reason:    "deleted fork",
			untrusted: true,
			scope:     PRKey(45),
		},
		{
			name:      "pull_request_target",
			ev:        Event{Name: "pull_request_target", Ref: "refs/heads/main", HeadRef: "arm64", BaseRef: "main"},
			fixture:   "pull_request_target.json",
			imports:   []Key{main},
			reason:    "untrusted",
			untrusted: true,
			scope:     PRKey(44),
		},
		{
			name:      "pull_request_target from the same repository is untrusted too",
			ev:        Event{Name: "pull_request_target", Ref: "refs/heads/develop", HeadRef: "feature/Login#2", BaseRef: "develop"},
			fixture:   "pull_request.json",
			imports:   []Key{develop, main},
			reason:    "untrusted",
			untrusted: true,
			scope:     PRKey(42),
		},
		{
			name:    "merge_group",
			ev:      Event{Name: "merge_group", Ref: "refs/heads/" + queue.Name},
			fixture: "merge_group.json",
			imports: []Key{BranchKey("release/2.x"), main},
			reason:  "merge queue",
			scope:   queue,
		},
		{
			name:    "merge_group, cache-export true",
			ev:      Event{Name: "merge_group", Ref: "refs/heads/" + queue.Name},
			fixture: "merge_group.json",
			opt:     Options{Export: ExportAlways},
			imports: []Key{BranchKey("release/2.x"), main},
			export:  queue,
			scope:   queue,
		},
		{
			name:    "schedule on the default branch",
			ev:      Event{Name: "schedule", Ref: "refs/heads/main"},
			fixture: "schedule.json",
			imports: []Key{main},
			export:  main,
			scope:   main,
		},
		{
			name:    "workflow_dispatch on a branch",
			ev:      Event{Name: "workflow_dispatch", Ref: "refs/heads/release/2.x"},
			fixture: "workflow_dispatch.json",
			imports: []Key{BranchKey("release/2.x"), main},
			export:  BranchKey("release/2.x"),
			scope:   BranchKey("release/2.x"),
		},
		{
			name:    "workflow_dispatch on a tag",
			ev:      Event{Name: "workflow_dispatch", Ref: "refs/tags/v1.2.0"},
			fixture: "workflow_dispatch.json",
			imports: []Key{main},
			reason:  "tag",
			scope:   TagKey("v1.2.0"),
		},
		{
			name:    "release without a payload or ref",
			ev:      Event{Name: "release"},
			imports: []Key{main},
			reason:  "no branch or tag",
		},
		{
			name:    "no ref, cache-export true has nothing to export to",
			ev:      Event{Name: "repository_dispatch"},
			opt:     Options{Export: ExportAlways},
			imports: []Key{main},
			reason:  "no branch or tag",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fixture != "" {
				tt.ev.Payload = fixture(t, tt.fixture)
			}
			opt := tt.opt
			opt.Repository = testRepo
			plan, err := Derive(tt.ev, opt)
			if err != nil {
				t.Fatalf("Derive: %v", err)
			}
			if want := refs("", tt.imports...); !slices.Equal(plan.Imports, want) {
				t.Errorf("Imports:\n got %q\nwant %q", plan.Imports, want)
			}
			if tt.export.IsZero() {
				if plan.Export != "" {
					t.Errorf("Export = %q, want none", plan.Export)
				}
				if !strings.Contains(plan.ExportReason, tt.reason) || tt.reason == "" {
					t.Errorf("ExportReason = %q, want it to contain %q", plan.ExportReason, tt.reason)
				}
			} else {
				if want := refs("", tt.export)[0]; plan.Export != want {
					t.Errorf("Export = %q, want %q", plan.Export, want)
				}
				if plan.ExportReason != "" {
					t.Errorf("ExportReason = %q, want empty when exporting", plan.ExportReason)
				}
			}
			if plan.Untrusted != tt.untrusted {
				t.Errorf("Untrusted = %v, want %v", plan.Untrusted, tt.untrusted)
			}
			// Untrusted, which needs no repository, agrees with the plan.
			if u, why, err := Untrusted(tt.ev); err != nil || u != plan.Untrusted || (u && why == "") {
				t.Errorf("Untrusted(ev) = %v, %q, %v; plan says %v", u, why, err, plan.Untrusted)
			}
			if plan.Scope != tt.scope {
				t.Errorf("Scope = %v, want %v", plan.Scope, tt.scope)
			}
			for _, r := range append(slices.Clone(plan.Imports), plan.Export) {
				if r != "" && !refRE.MatchString(r) {
					t.Errorf("ref %q is not %s:<valid tag>", r, testRepo)
				}
			}
		})
	}
}

// The exact strings matter to users (they show up in ECR), so pin one plan.
func TestDeriveLiteralRefs(t *testing.T) {
	plan, err := Derive(
		Event{Name: "push", Ref: "refs/heads/feature/Login#2", Payload: fixture(t, "push_branch.json")},
		Options{Repository: "127.0.0.1:5000/app", Scope: "linux/arm64"},
	)
	if err != nil {
		t.Fatal(err)
	}
	want := Plan{
		Imports: []string{
			"127.0.0.1:5000/app:cache-feature-Login-2-linux-arm64-bfa9e91715f6b2ee",
			"127.0.0.1:5000/app:cache-main-linux-arm64-a4ae4511f495c756",
		},
		Export: "127.0.0.1:5000/app:cache-feature-Login-2-linux-arm64-bfa9e91715f6b2ee",
		Scope:  BranchKey("feature/Login#2"),
	}
	if !slices.Equal(plan.Imports, want.Imports) || plan.Export != want.Export || plan.Scope != want.Scope ||
		plan.ExportReason != "" || plan.Untrusted {
		t.Errorf("plan:\n got %+v\nwant %+v", plan, want)
	}
}

func TestDeriveScopeAndExtraFrom(t *testing.T) {
	ev := Event{Name: "pull_request", Ref: "refs/pull/42/merge", Payload: fixture(t, "pull_request.json")}
	extra := []string{
		"ghcr.io/octo-org/app:buildcache",
		"",
		testRepo + ":" + Tag(DefaultPrefix, BranchKey("main"), "arm64"), // already imported
		" ghcr.io/octo-org/app:buildcache ",                             // duplicate after trimming
		"docker.io/octo/app:cache",
	}
	plan, err := Derive(ev, Options{Repository: testRepo, Prefix: DefaultPrefix, Scope: "arm64", ExtraFrom: extra})
	if err != nil {
		t.Fatal(err)
	}
	want := append(refs("arm64", PRKey(42), BranchKey("feature/Login#2"), BranchKey("develop"), BranchKey("main")),
		"ghcr.io/octo-org/app:buildcache", "docker.io/octo/app:cache")
	if !slices.Equal(plan.Imports, want) {
		t.Errorf("Imports:\n got %q\nwant %q", plan.Imports, want)
	}
	if wantExport := refs("arm64", PRKey(42))[0]; plan.Export != wantExport {
		t.Errorf("Export = %q, want %q", plan.Export, wantExport)
	}

	// Matrix jobs sharing one repository never share a tag.
	other, err := Derive(ev, Options{Repository: testRepo, Scope: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if other.Export == plan.Export {
		t.Errorf("scopes arm64 and amd64 export to the same ref %q", plan.Export)
	}
}

// A pull request whose payload is missing cannot be proven to come from this
// repository: it must not write, but still gets its number from GITHUB_REF.
func TestDerivePullRequestWithoutPayload(t *testing.T) {
	plan, err := Derive(Event{Name: "pull_request", Ref: "refs/pull/7/merge", HeadRef: "feat", BaseRef: "main"},
		Options{Repository: testRepo})
	if err != nil {
		t.Fatal(err)
	}
	if !plan.Untrusted || plan.Export != "" || plan.Scope != PRKey(7) {
		t.Errorf("plan = %+v, want untrusted, no export, scope pr 7", plan)
	}
	if want := refs("", BranchKey("main")); !slices.Equal(plan.Imports, want) {
		t.Errorf("Imports = %q, want %q", plan.Imports, want)
	}
}

func TestDeriveErrors(t *testing.T) {
	pr := fixture(t, "pull_request.json")
	tests := []struct {
		name string
		ev   Event
		opt  Options
		want string
	}{
		{"empty repository", Event{Name: "push", Ref: "refs/heads/main"}, Options{}, "repository is empty"},
		{"repository with tag", Event{Name: "push", Ref: "refs/heads/main"}, Options{Repository: "127.0.0.1:5000/app:latest"}, "tag"},
		{"repository with digest", Event{Name: "push", Ref: "refs/heads/main"}, Options{Repository: "r/app@sha256:00"}, "digest"},
		{"invalid prefix", Event{Name: "push", Ref: "refs/heads/main"}, Options{Repository: testRepo, Prefix: "-x"}, "cache-tag-prefix"},
		{"invalid export mode", Event{Name: "push", Ref: "refs/heads/main"}, Options{Repository: testRepo, Export: "yes"}, "cache-export"},
		{"malformed pull_request payload", Event{Name: "pull_request", Ref: "refs/pull/1/merge", Payload: pr[:len(pr)/2]}, Options{Repository: testRepo}, "read pull_request event payload"},
		{"malformed merge_group payload", Event{Name: "merge_group", Payload: []byte("{")}, Options{Repository: testRepo}, "read merge_group event payload"},
		{"malformed push payload needed for the default branch", Event{Name: "push", Ref: "refs/heads/x", Payload: []byte("not json")}, Options{Repository: testRepo}, "read push event payload"},
		{"pull_request without number", Event{Name: "pull_request", Ref: "refs/heads/feature"}, Options{Repository: testRepo}, "no pull request number"},
		{"pull_request_target without number", Event{Name: "pull_request_target", Ref: "refs/heads/main", Payload: []byte(`{"repository":{"default_branch":"main"}}`)}, Options{Repository: testRepo}, "no pull request number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := Derive(tt.ev, tt.opt)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Derive = %+v, %v; want error containing %q", plan, err, tt.want)
			}
		})
	}

	// A push payload is not needed when the default branch is given.
	if _, err := Derive(Event{Name: "push", Ref: "refs/heads/x", Payload: []byte("not json")},
		Options{Repository: testRepo, DefaultBranch: "main"}); err != nil {
		t.Errorf("Derive with unneeded malformed payload: %v", err)
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
