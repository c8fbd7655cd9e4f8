package ghout

import (
	"html"
	"strings"
	"testing"
)

// hostileText is what a branch name, a step name from a Dockerfile or a build
// message can carry into the job summary.
var hostileText = []string{
	"refs/heads/main",
	"main|evil | injected | cells",
	"<img src=x onerror=alert(1)>",
	"<script>alert(1)</script>",
	"refs/heads/<b>bold</b>",
	"[click me](https://evil.example)",
	"![x](https://evil.example/x.png)",
	"`code` and ``double`` and ```triple```",
	"line1\nline2\r\n| --- | --- |\r| injected | row |",
	"&lt;b&gt; &amp; &#124;",
	`a\|b`,
	`trailing backslash\`,
	`\`,
	"**bold** _em_ ~~strike~~ $x^2$",
	"<!-- comment",
	"`",
	"``",
	" `x` ",
	"   ",
	" lead",
	"|",
	"[2/3] RUN echo '|' > /x && printf '<br>'",
}

func TestCellShowsExactlyTheText(t *testing.T) {
	t.Parallel()
	for _, s := range hostileText {
		c := Cell(s)
		if i := strings.IndexAny(strings.ReplaceAll(c, "<br>", ""), "<>|`[]\\*_~$\"'\r\n"); i >= 0 {
			t.Errorf("Cell(%q) = %q: markup character %q left", s, c, c[i])
		}
		// With no markup left, what GitHub shows is the text with references decoded.
		shown := html.UnescapeString(strings.ReplaceAll(c, "<br>", "\n"))
		if want := strings.Join(splitLines(s), "\n"); shown != want {
			t.Errorf("Cell(%q) shows %q, want %q", s, shown, want)
		}
		if cells := tableCells("| " + c + " | x |"); len(cells) != 2 {
			t.Errorf("Cell(%q) = %q: the row has %d cells, want 2", s, c, len(cells))
		}
	}
}

func TestCodeShowsExactlyTheText(t *testing.T) {
	t.Parallel()
	for _, s := range hostileText {
		c := Code(s)
		row := "| " + c + " | x |"
		cells := tableCells(row)
		if len(cells) != 2 {
			t.Errorf("Code(%q) = %q: the row has %d cells, want 2", s, c, len(cells))
			continue
		}
		got, ok := codeSpan(cells[0])
		if want := strings.Join(splitLines(s), " "); !ok || got != want {
			t.Errorf("Code(%q) = %q: cell %q reads as code span %v with %q, want %q", s, c, cells[0], ok, got, want)
		}
	}
	if Code("") != "" {
		t.Errorf("Code(\"\") = %q, want an empty cell", Code(""))
	}
}

// tableCells splits a GFM table row as cmark-gfm does (extensions/table.c): a
// cell is the longest match of (backslash-escaped ASCII punctuation | anything
// but "|" and line breaks)+, so a "|" right after a backslash stays in the
// cell, and "\|" is then read as "|".
func tableCells(row string) []string {
	if strings.ContainsAny(row, "\r\n") {
		return nil // a line break ends the row
	}
	row = strings.TrimPrefix(strings.TrimSpace(row), "|")
	var cells []string
	var cell strings.Builder
	for i := 0; i < len(row); i++ {
		switch {
		case row[i] == '|' && (i == 0 || row[i-1] != '\\'):
			cells = append(cells, unescapePipes(strings.TrimSpace(cell.String())))
			cell.Reset()
		default:
			cell.WriteByte(row[i])
		}
	}
	if strings.TrimSpace(cell.String()) != "" {
		cells = append(cells, unescapePipes(strings.TrimSpace(cell.String())))
	}
	return cells
}

// unescapePipes is cmark-gfm's: a backslash right before "|" is dropped.
func unescapePipes(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && s[i+1] == '|' {
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// codeSpan reads cell as exactly one CommonMark code span and returns its
// content.
func codeSpan(cell string) (string, bool) {
	n := len(cell) - len(strings.TrimLeft(cell, "`"))
	fence := cell[:n]
	if n == 0 || len(cell) < 2*n || !strings.HasSuffix(cell, fence) || strings.HasSuffix(cell, fence+"`") {
		return "", false
	}
	inner := cell[n : len(cell)-n]
	for _, run := range strings.FieldsFunc(inner, func(r rune) bool { return r != '`' }) {
		if len(run) == n {
			return "", false // the span would close early
		}
	}
	if len(inner) >= 2 && inner[0] == ' ' && inner[len(inner)-1] == ' ' && strings.Trim(inner, " ") != "" {
		inner = inner[1 : len(inner)-1]
	}
	return inner, true
}
