package docs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Groups come from "# -- Title: about" comments; any other input, wherever it
// is added, joins the group it is written in; the tables escape what Markdown
// would read as HTML, emphasis or a column.
func TestParseActionGroups(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("testdata", "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseAction(b)
	if err != nil {
		t.Fatal(err)
	}
	want := `### Image

What is built.

| input | default | description |
|---|---|---|
| ` + "`repository`" + ` |  | Image repository, e.g. &lt;name>. |
| ` + "`push`" + ` | ` + "`true`" + ` | Push \| or not. |
| ` + "`added-later`" + ` |  | An input added without a group comment joins the group it is written in. |

### Cache

The cache\_tags.

| input | default | description |
|---|---|---|
| ` + "`cache-mode`" + ` | ` + "`max`" + ` | max or min\*. |
`
	if got := a.InputsTables(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if got := a.OutputsTable(); !strings.Contains(got, "| `digest` | Manifest digest. |") {
		t.Errorf("outputs:\n%s", got)
	}
}

// An input before the first group comment is an error that says how to fix it.
func TestParseActionUngrouped(t *testing.T) {
	t.Parallel()
	_, err := ParseAction([]byte("inputs:\n  stray:\n    description: x\n"))
	if err == nil || !strings.Contains(err.Error(), "input stray comes before the first group comment") {
		t.Errorf("err = %v", err)
	}
}
