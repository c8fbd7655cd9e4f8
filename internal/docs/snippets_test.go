package docs

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/ecr-build-cache/ecr-build-cache/internal/config"
	"github.com/rhysd/actionlint"
	"github.com/sethvargo/go-githubactions"
	"go.yaml.in/yaml/v3"
)

// thisAction is how the docs name this action in a step's uses:.
const thisAction = "ecr-build-cache/ecr-build-cache@"

var stepOutput = regexp.MustCompile(`steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)`)

// unit is one workflow to check: its text, and where each of its lines is in
// the docs (0 for a line the check added around a fragment).
type unit struct {
	name  string // for messages: file:line and what
	text  string
	lines []int // doc line of each text line, 1-based; 0 = added
	file  string
}

// checker checks the snippets of a set of Markdown files against action.yml.
type checker struct {
	action  *Action
	inputs  map[string]bool
	outputs map[string]bool
	known   map[string]bool // workflow names a fragment may name
	lint    *actionlint.Linter
	scratch string // a directory with the files userFiles name
	errs    []string
}

func newChecker(actionYML []byte, known []string) (*checker, error) {
	a, err := ParseAction(actionYML)
	if err != nil {
		return nil, err
	}
	c := &checker{action: a, inputs: map[string]bool{}, outputs: map[string]bool{}, known: map[string]bool{}}
	for _, in := range a.Inputs() {
		c.inputs[in.Name] = true
	}
	for _, o := range a.Outputs {
		c.outputs[o.Name] = true
	}
	for _, k := range known {
		c.known[k] = true
	}
	// No shellcheck or pyflakes: the result must not depend on what the
	// machine has installed.
	c.lint, err = actionlint.NewLinter(io.Discard, &actionlint.LinterOptions{})
	return c, err
}

func (c *checker) errorf(file string, line int, format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf("%s:%d: %s", file, line, fmt.Sprintf(format, args...)))
}

// names collects the workflow names the blocks declare, for fragments to name.
func names(bs []block) []string {
	var out []string
	for _, b := range bs {
		if b.workflow != "" {
			out = append(out, b.workflow)
		}
	}
	return out
}

// check checks every YAML, diff and JSON block.
func (c *checker) check(bs []block) {
	for _, b := range bs {
		switch b.lang {
		case "yaml", "yml":
			c.checkYAML(b)
		case "diff":
			c.checkDiff(b)
		case "json":
			if !json.Valid([]byte(b.text)) {
				c.errorf(b.file, b.line, "json block is not valid JSON")
			}
		}
	}
}

func (c *checker) checkYAML(b block) {
	lines := make([]int, strings.Count(b.text, "\n"))
	for i := range lines {
		lines[i] = b.line + i
	}
	u := unit{name: "workflow", text: b.text, lines: lines, file: b.file}
	if b.fragmentOf == "" {
		if !isWorkflow(b.text) {
			c.errorf(b.file, b.line-1, "yaml block is not a complete workflow (on: and jobs:) and has no %q line before it", "<!-- fragment of: NAME -->")
			return
		}
		c.checkUnit(u)
		return
	}
	if !c.known[b.fragmentOf] {
		c.errorf(b.file, b.line-1, "fragment of %q: no complete workflow of that name (a block marked <!-- workflow: %s --> or docs/examples/%s.yml)", b.fragmentOf, b.fragmentOf, b.fragmentOf)
		return
	}
	w, err := wrap(u)
	if err != nil {
		c.errorf(b.file, b.line, "fragment of %s: %v", b.fragmentOf, err)
		return
	}
	c.checkUnit(w)
}

// checkDiff checks both sides of a before/after diff of a workflow.
func (c *checker) checkDiff(b block) {
	for _, side := range []struct {
		name string
		drop byte
	}{{"before", '+'}, {"after", '-'}} {
		u := unit{name: side.name, file: b.file}
		var at []int
		u.text, at = diffSide(b.text, side.drop)
		for _, i := range at {
			u.lines = append(u.lines, b.line+i)
		}
		if !isWorkflow(u.text) {
			c.errorf(b.file, b.line, "diff block: the %s side is not a complete workflow", side.name)
			continue
		}
		c.checkUnit(u)
	}
}

// isWorkflow tells whether text is a mapping with on: and jobs:.
func isWorkflow(text string) bool {
	var m map[string]any
	if yaml.Unmarshal([]byte(text), &m) != nil {
		return false
	}
	_, on := m["on"]
	_, jobs := m["jobs"]
	return on && jobs
}

// wrap makes a fragment a workflow: a list of steps goes into a job, a job
// into jobs:, a jobs mapping under on: push.
func wrap(u unit) (unit, error) {
	text := dedent(u.text)
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(text), &n); err != nil || len(n.Content) == 0 {
		return u, fmt.Errorf("not YAML: %w", err)
	}
	root := n.Content[0]
	var head string
	indent := ""
	switch {
	case root.Kind == yaml.SequenceNode:
		head, indent = "on: push\njobs:\n  fragment:\n    runs-on: ubuntu-latest\n    steps:\n", "      "
	case root.Kind == yaml.MappingNode && hasKey(root, "jobs"):
		head = "on: push\n"
	case root.Kind == yaml.MappingNode && (hasKey(root, "steps") || hasKey(root, "runs-on") || hasKey(root, "uses")):
		head, indent = "on: push\njobs:\n  fragment:\n", "    "
	case root.Kind == yaml.MappingNode && len(root.Content) >= 2 && root.Content[1].Kind == yaml.MappingNode:
		head, indent = "on: push\njobs:\n", "  "
	default:
		return u, fmt.Errorf("neither steps, a job, jobs nor a workflow")
	}
	var b strings.Builder
	b.WriteString(head)
	for _, l := range strings.SplitAfter(text, "\n") {
		if strings.TrimSpace(l) != "" {
			b.WriteString(indent)
		}
		b.WriteString(l)
	}
	lines := make([]int, strings.Count(head, "\n"), strings.Count(head, "\n")+len(u.lines))
	u.lines = append(lines, u.lines...)
	u.text = b.String()
	u.name = "fragment"
	return u, nil
}

func hasKey(m *yaml.Node, key string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return true
		}
	}
	return false
}

// dedent removes the indentation every non-blank line shares.
func dedent(s string) string {
	lines := strings.Split(s, "\n")
	common := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if n := len(l) - len(strings.TrimLeft(l, " ")); common < 0 || n < common {
			common = n
		}
	}
	for i, l := range lines {
		if len(l) >= common && common > 0 {
			lines[i] = l[common:]
		}
	}
	return strings.Join(lines, "\n")
}

// docLine is the docs line of a unit's line (1-based), or the first line of
// the unit for a line the check added.
func (u unit) docLine(line int) int {
	if line >= 1 && line <= len(u.lines) && u.lines[line-1] != 0 {
		return u.lines[line-1]
	}
	for _, l := range u.lines {
		if l != 0 {
			return l
		}
	}
	return 0
}

// checkUnit runs actionlint and the action.yml checks on one workflow.
func (c *checker) checkUnit(u unit) {
	errs, err := c.lint.Lint(u.file+".yml", []byte(u.text), nil)
	if err != nil {
		c.errorf(u.file, u.docLine(1), "actionlint: %v", err)
		return
	}
	for _, e := range errs {
		c.errorf(u.file, u.docLine(e.Line), "actionlint (%s): %s [%s]", u.name, e.Message, e.Kind)
	}
	var wf struct {
		Jobs map[string]yaml.Node
	}
	if err := yaml.Unmarshal([]byte(u.text), &wf); err != nil {
		return // actionlint has said why
	}
	for _, job := range wf.Jobs {
		c.checkJob(u, &job)
	}
}

// checkJob checks the with: keys given to this action against its inputs, and
// every steps.<id>.outputs.<name> of one of its steps against its outputs.
func (c *checker) checkJob(u unit, job *yaml.Node) {
	ours := map[string]bool{}
	var steps []*yaml.Node
	for i := 0; i+1 < len(job.Content); i += 2 {
		if job.Content[i].Value == "steps" {
			steps = job.Content[i+1].Content
		}
	}
	for _, s := range steps {
		var uses, id string
		var with *yaml.Node
		for i := 0; i+1 < len(s.Content); i += 2 {
			switch s.Content[i].Value {
			case "uses":
				uses = s.Content[i+1].Value
			case "id":
				id = s.Content[i+1].Value
			case "with":
				with = s.Content[i+1]
			}
		}
		if !strings.HasPrefix(uses, thisAction) {
			continue
		}
		if id != "" {
			ours[id] = true
		}
		if with == nil {
			continue
		}
		for i := 0; i+1 < len(with.Content); i += 2 {
			if k := with.Content[i]; !c.inputs[k.Value] {
				c.errorf(u.file, u.docLine(k.Line), "with: %s is not an input of %s (action.yml)", k.Value, strings.TrimSuffix(thisAction, "@"))
			}
		}
		c.checkValues(u, with)
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode {
			for _, m := range stepOutput.FindAllStringSubmatch(n.Value, -1) {
				if ours[m[1]] && !c.outputs[m[2]] {
					c.errorf(u.file, u.docLine(n.Line), "steps.%s.outputs.%s: %s has no output %s (action.yml)", m[1], m[2], strings.TrimSuffix(thisAction, "@"), m[2])
				}
			}
		}
		for _, k := range n.Content {
			walk(k)
		}
	}
	walk(job)
}

// markdownFiles are README.md and every Markdown file under docs/, from root.
func markdownFiles(root string) ([]string, error) {
	files := []string{filepath.Join(root, "README.md")}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			files = append(files, p)
		}
		return err
	})
	slices.Sort(files[1:])
	return files, err
}

// exampleNames are the workflows under docs/examples, which fragments may
// name by their file name without .yml.
func exampleNames(root string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(root, "docs", "examples", "*.yml"))
	var out []string
	for _, p := range m {
		out = append(out, strings.TrimSuffix(filepath.Base(p), ".yml"))
	}
	return out, err
}

// checkFiles checks the snippets of the given Markdown files (and the example
// workflows) against actionYML, and returns every problem, one per line.
func checkFiles(root string, files, examples []string, actionYML []byte, scratch string) ([]string, error) {
	if err := scratchFiles(scratch); err != nil {
		return nil, err
	}
	var all []block
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(root, f)
		all = append(all, blocks(rel, string(b))...)
	}
	named := names(all)
	c, err := newChecker(actionYML, append(named, examples...))
	if err != nil {
		return nil, err
	}
	c.scratch = scratch
	if dup := duplicates(named); len(dup) > 0 {
		c.errorf(files[0], 0, "workflow names used twice: %s", strings.Join(dup, ", "))
	}
	example := map[string]string{}
	for _, e := range examples {
		p := filepath.Join(root, "docs", "examples", e+".yml")
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(root, p)
		example[e] = string(b)
		all = append(all, block{file: rel, line: 1, lang: "yaml", text: string(b), workflow: e})
	}
	// A block named like an example shows that file, verbatim.
	for _, b := range all {
		if want, ok := example[b.workflow]; ok && !strings.HasPrefix(b.file, filepath.Join("docs", "examples")) && b.text != want {
			c.errorf(b.file, b.line, "workflow %s differs from docs/examples/%s.yml: show the file verbatim", b.workflow, b.workflow)
		}
	}
	c.check(all)
	return c.errs, nil
}

func duplicates(s []string) []string {
	s = slices.Sorted(slices.Values(s))
	var out []string
	for i := 1; i < len(s); i++ {
		if s[i] == s[i-1] && (len(out) == 0 || out[len(out)-1] != s[i]) {
			out = append(out, s[i])
		}
	}
	return out
}

// userFiles are inputs that name files of the user's repository or runner,
// which the docs' examples cannot provide: the check gives a file of its own
// for a path ("" = a directory with a Dockerfile), and leaves out the lists.
var userFiles = map[string]string{
	"context": "", "file": "Dockerfile", "buildkit-tls-ca-cert": "ca.pem", "buildkit-tls-cert": "cert.pem",
	"buildkit-tls-key": "key.pem", "secret-files": "-", "build-contexts": "-", "ssh": "-",
}

// scratchFiles makes the files checkValues gives for userFiles in dir.
func scratchFiles(dir string) error {
	for _, name := range userFiles {
		if name != "" && name != "-" {
			if err := os.WriteFile(filepath.Join(dir, name), []byte("FROM scratch\n"), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkValues reads the step's literal inputs (no expression, no file of the
// user's) as the action reads them on a push to main, and reports every
// problem config.Read finds with one of them: a value the action would
// refuse on the first run.
func (c *checker) checkValues(u unit, with *yaml.Node) {
	env := map[string]string{"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/main"}
	line := map[string]int{}
	for i := 0; i+1 < len(with.Content); i += 2 {
		k, v := with.Content[i], with.Content[i+1]
		f, isFile := userFiles[k.Value]
		switch {
		case !c.inputs[k.Value] || f == "-":
		case isFile:
			env["INPUT_"+strings.ToUpper(k.Value)] = filepath.Join(c.scratch, f)
		case !strings.Contains(v.Value, "${{"):
			env["INPUT_"+strings.ToUpper(k.Value)] = v.Value
			line[k.Value] = k.Line
		}
	}
	a := githubactions.New(githubactions.WithGetenv(func(k string) string { return env[k] }), githubactions.WithWriter(io.Discard))
	_, err := config.Read(a, nil)
	if err == nil {
		return
	}
	for _, problem := range strings.Split(err.Error(), "\n") {
		name, _, _ := strings.Cut(problem, ":")
		if l, given := line[name]; given {
			c.errorf(u.file, u.docLine(l), "the action refuses this value: %s", problem)
		}
	}
}
