package docs

import (
	"fmt"
	"regexp"
	"strings"
)

// The markers a snippet may carry on the line before its fence: a complete
// workflow may be named, and a YAML block that is not a complete workflow must
// say which named workflow it is a piece of.
var (
	workflowMarker = regexp.MustCompile(`^<!-- workflow: ([a-z0-9-]+) -->$`)
	fragmentMarker = regexp.MustCompile(`^<!-- fragment of: ([a-z0-9-]+) -->$`)
)

// block is one fenced code block of a Markdown file.
type block struct {
	file       string
	line       int // of the first line inside the fence
	lang, text string
	workflow   string // named by a workflow marker
	fragmentOf string // named by a fragment marker
}

// blocks extracts the fenced code blocks of a Markdown file, with the marker
// on the line before each.
func blocks(file string, md string) []block {
	var out []block
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		fence := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(fence, "```") {
			continue
		}
		b := block{file: file, line: i + 2, lang: strings.TrimSpace(strings.TrimPrefix(fence, "```"))}
		if i > 0 {
			prev := strings.TrimSpace(lines[i-1])
			if m := workflowMarker.FindStringSubmatch(prev); m != nil {
				b.workflow = m[1]
			}
			if m := fragmentMarker.FindStringSubmatch(prev); m != nil {
				b.fragmentOf = m[1]
			}
		}
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		b.text = strings.Join(body, "\n") + "\n"
		out = append(out, b)
	}
	return out
}

// Workflow returns the complete workflow a Markdown page names name (the
// block after <!-- workflow: name -->; of a diff, the side after it), as a
// user copies it: the e2e tests run the recipes from the page itself.
func Workflow(md, name string) (string, error) {
	for _, b := range blocks("", md) {
		if b.workflow == name && b.lang == "diff" {
			after, _ := diffSide(b.text, '-')
			return after, nil
		}
		if b.workflow == name {
			return b.text, nil
		}
	}
	return "", fmt.Errorf("no block marked <!-- workflow: %s -->", name)
}

// diffSide is one side of a diff block, without the lines that start with
// drop ('+' for the side before, '-' for the side after) and without the
// diff's first column; at[i] is the block line of the side's line i.
func diffSide(text string, drop byte) (side string, at []int) {
	var b strings.Builder
	for i, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if l != "" && l[0] == drop {
			continue
		}
		if l != "" {
			l = l[1:]
		}
		b.WriteString(l + "\n")
		at = append(at, i)
	}
	return b.String(), at
}
