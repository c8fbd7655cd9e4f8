package docs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const root = "../.."

// Every snippet of README.md and docs/ passes actionlint, gives this action
// only inputs action.yml declares, and reads only outputs it declares.
func TestDocsSnippets(t *testing.T) {
	t.Parallel()
	files, err := markdownFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	examples, err := exampleNames(root)
	if err != nil {
		t.Fatal(err)
	}
	action, err := os.ReadFile(filepath.Join(root, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	errs, err := checkFiles(root, files, examples, action, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		t.Error(e)
	}
	if len(files) < 2 {
		t.Errorf("found only %q: README.md and docs/*.md expected", files)
	}
}

// The checker finds each kind of mistake in a fixture, on its line (a
// misspelt input, an output that does not exist, an unmarked or orphan
// fragment, what actionlint finds, a refused input, a value the action
// refuses such as the plain-TCP buildkit-host the old README showed, invalid
// JSON), and nothing in a fixture without mistakes.
func TestSnippetChecker(t *testing.T) {
	t.Parallel()
	action, err := os.ReadFile(filepath.Join(root, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file string
		want []string // each the start of one error, in order
	}{
		{"good.md", nil},
		{"bad.md", []string{
			"testdata/bad.md:13: with: repositry is not an input of ecr-build-cache/ecr-build-cache",
			`testdata/bad.md:14: the action refuses this value: tags: bare tag "latest" needs the repository input`,
			"testdata/bad.md:15: steps.build.outputs.digests: ecr-build-cache/ecr-build-cache has no output digests",
			"testdata/bad.md:18: yaml block is not a complete workflow",
			"testdata/bad.md:23: fragment of \"nowhere\": no complete workflow of that name",
			"testdata/bad.md:32: actionlint (fragment): property \"nope\" is not defined",
			"testdata/bad.md:35: with: cache-to is not an input",
			"testdata/bad.md:51: actionlint (after): property \"nostep\" is not defined",
			"testdata/bad.md:55: json block is not valid JSON",
			`testdata/bad.md:64: the action refuses this value: cache-mode: "maximum" is not max or min`,
			`testdata/bad.md:63: the action refuses this value: buildkit-host: "tcp://buildkitd.internal:1234" is plain TCP to another host`,
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			errs, err := checkFiles(".", []string{filepath.Join("testdata", tc.file)}, nil, action, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if len(errs) != len(tc.want) {
				t.Errorf("%d errors, want %d:\n%s", len(errs), len(tc.want), strings.Join(errs, "\n"))
			}
			for i := range min(len(errs), len(tc.want)) {
				if !strings.HasPrefix(errs[i], tc.want[i]) {
					t.Errorf("error %d:\n%s\nwant it to start with:\n%s", i, errs[i], tc.want[i])
				}
			}
		})
	}
}

// docs/inputs.md and the README's tables are what hack/docgen makes from
// action.yml now.
func TestGeneratedDocsUpToDate(t *testing.T) {
	t.Parallel()
	read := func(p string) ([]byte, error) { return os.ReadFile(filepath.Join(root, p)) }
	files, err := Generate(read)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := read(name)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s is not what action.yml makes: run go run ./hack/docgen", name)
		}
	}
}

// Workflow gives the e2e tests a page's named workflow as a user copies it: a
// YAML block as written, a diff as it reads after the change.
func TestWorkflow(t *testing.T) {
	t.Parallel()
	md, err := os.ReadFile(filepath.Join("testdata", "good.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, has, hasNot, err string
	}{
		{name: "good-build", has: "on: push\npermissions: {}\n"},
		{name: "good-migrate", has: "      - uses: ecr-build-cache/ecr-build-cache@v1\n        with:\n          repository: my-app\n", hasNot: "build-push-action"},
		{name: "missing", err: "no block marked <!-- workflow: missing -->"},
	} {
		wf, err := Workflow(string(md), tc.name)
		switch {
		case tc.err != "":
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
		case err != nil || !strings.Contains(wf, tc.has) || tc.hasNot != "" && strings.Contains(wf, tc.hasNot):
			t.Errorf("%s: %v\n%s\nwant it to hold %q and not %q", tc.name, err, wf, tc.has, tc.hasNot)
		}
	}
}
