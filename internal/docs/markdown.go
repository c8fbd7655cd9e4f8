package docs

import (
	"fmt"
	"strings"

	"github.com/ecr-build-cache/ecr-build-cache/internal/ghout"
)

// InputsTables renders one table per group of inputs, under level-3 headings.
func (a *Action) InputsTables() string {
	var b strings.Builder
	for i, g := range a.Groups {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "### %s\n\n", g.Title)
		if g.About != "" {
			fmt.Fprintf(&b, "%s.\n\n", cell(upperFirst(g.About)))
		}
		b.WriteString("| input | default | description |\n|---|---|---|\n")
		for _, in := range g.Inputs {
			def := ""
			if in.HasDefault {
				def = code(in.Default)
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", in.Name, def, cell(in.Description))
		}
	}
	return b.String()
}

// OutputsTable renders the outputs as one table.
func (a *Action) OutputsTable() string {
	var b strings.Builder
	b.WriteString("| output | description |\n|---|---|\n")
	for _, o := range a.Outputs {
		fmt.Fprintf(&b, "| `%s` | %s |\n", o.Name, cell(o.Description))
	}
	return b.String()
}

// InputsPage is docs/inputs.md.
func (a *Action) InputsPage() string {
	return "<!-- Generated from action.yml by `go run ./hack/docgen`: edit action.yml, then run it. -->\n" +
		"# Inputs and outputs\n\n" +
		"Every input is checked before anything is built, and every problem is reported in one\n" +
		"message; a `with:` key that is not an input fails the run, naming the input it most likely\n" +
		"meant. List inputs follow docker/build-push-action's rules: entries are separated by\n" +
		"newlines (and by commas where the description says so), trimmed, blank lines and `#`\n" +
		"comments dropped, and an entry can be CSV-quoted (`\"a,b\"`).\n\n" +
		"## Inputs\n\n" + a.InputsTables() + "\n## Outputs\n\n" + a.OutputsTable()
}

// ReplaceRegion replaces what lies between the lines `<!-- begin NAME -->` and
// `<!-- end NAME -->` of doc with content.
func ReplaceRegion(doc, name, content string) (string, error) {
	begin, end := "<!-- begin "+name+" -->\n", "<!-- end "+name+" -->"
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < i {
		return "", fmt.Errorf("no %q ... %q region", strings.TrimSpace(begin), end)
	}
	return doc[:i+len(begin)] + content + doc[j:], nil
}

// cell makes a description one table cell: one line, and plain text where
// Markdown would read <name> as an HTML tag, * as emphasis or | as a column.
func cell(s string) string {
	return cellEscaper.Replace(strings.Join(strings.Fields(s), " "))
}

var cellEscaper = strings.NewReplacer("|", `\|`, "<", "&lt;", "*", `\*`, "_", `\_`)

// code is a default as a code span in a table cell; an empty one shows as "".
func code(s string) string {
	if s == "" {
		return `""`
	}
	return ghout.Code(s)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// Generate returns the generated files (docs/inputs.md and README.md with its
// regions replaced), by path from the repository root, read through readFile.
func Generate(readFile func(string) ([]byte, error)) (map[string]string, error) {
	b, err := readFile("action.yml")
	if err != nil {
		return nil, err
	}
	a, err := ParseAction(b)
	if err != nil {
		return nil, err
	}
	readme, err := readFile("README.md")
	if err != nil {
		return nil, err
	}
	r := string(readme)
	for _, region := range []struct{ name, content string }{
		{"inputs", a.InputsTables()},
		{"outputs", a.OutputsTable()},
	} {
		if r, err = ReplaceRegion(r, region.name, region.content); err != nil {
			return nil, fmt.Errorf("README.md: %w", err)
		}
	}
	return map[string]string{"docs/inputs.md": a.InputsPage(), "README.md": r}, nil
}
