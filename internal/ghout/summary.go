package ghout

import (
	"fmt"
	"strings"
)

// Cell renders untrusted text as the content of a job-summary table cell that
// shows exactly that text: every character markdown or HTML gives a meaning to
// (& < > " ' ` | [ ] \ * _ ~ $) becomes a numeric character reference, and a
// line break becomes <br>. Bare URLs may still be autolinked by GitHub (they
// show their own address); use Code for refs, names and paths.
func Cell(s string) string {
	var b strings.Builder
	for _, l := range splitLines(s) {
		if b.Len() > 0 {
			b.WriteString("<br>")
		}
		for _, r := range l {
			switch r {
			case '&', '<', '>', '"', '\'', '`', '|', '[', ']', '\\', '*', '_', '~', '$':
				fmt.Fprintf(&b, "&#%d;", r)
			default:
				b.WriteRune(r)
			}
		}
	}
	return b.String()
}

// Code renders untrusted text as an inline code span for a job-summary table
// cell: nothing inside a code span is markup, the fence is longer than any run
// of backticks in s, a line break becomes a space, and "|" is written "\|",
// which GFM's table parser turns back into "|" before the span is read (so use
// Code only inside tables). Code("") is "".
func Code(s string) string {
	if s == "" {
		return ""
	}
	s = strings.Join(splitLines(s), " ")
	run, longest := 0, 0
	for _, r := range s {
		if r != '`' {
			run = 0
			continue
		}
		run++
		longest = max(longest, run)
	}
	fence := strings.Repeat("`", longest+1)
	// CommonMark strips one space from each end of a span that begins and ends
	// with one; pad so a backtick or a space at either end survives.
	pad := ""
	if s[0] == '`' || s[len(s)-1] == '`' || (s[0] == ' ' && s[len(s)-1] == ' ' && strings.Trim(s, " ") != "") {
		pad = " "
	}
	return fence + pad + codeText(s) + pad + fence
}

// codeText is s as Code writes it inside the fence.
func codeText(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// TableHeading starts a job summary: "ecr-build-cache: title" (title is
// markdown the caller escaped) over a two-column table with no header names.
func TableHeading(sb *strings.Builder, title string) {
	sb.WriteString("### ecr-build-cache: " + title + "\n\n| | |\n|---|---|\n")
}

// Codes are refs as code spans, comma separated, for one table cell.
func Codes(refs []string) string {
	codes := make([]string, len(refs))
	for i, r := range refs {
		codes[i] = Code(r)
	}
	return strings.Join(codes, ", ")
}
