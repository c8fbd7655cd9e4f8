package docs

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	mdLink  = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	heading = regexp.MustCompile("(?m)^#{1,6} +(.+)$")
	notSlug = regexp.MustCompile(`[^a-z0-9 _-]`)
)

// pending are files a link may name before they exist: CONTRIBUTING.md comes
// with the change that moves the maintainers' material out of the README.
var pending = map[string]bool{"CONTRIBUTING.md": true}

// Every relative link of README.md and docs/ names a file that exists and,
// for a Markdown file, a heading it has, as GitHub makes its anchor.
func TestDocsLinks(t *testing.T) {
	t.Parallel()
	files, err := markdownFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		for _, e := range brokenLinks(f) {
			t.Error(e)
		}
	}
}

// The link check finds a missing file and a missing anchor.
func TestDocsLinksFixture(t *testing.T) {
	t.Parallel()
	got := brokenLinks(filepath.Join("testdata", "links.md"))
	want := []string{
		`testdata/links.md:5: link "missing.md": no such file`,
		`testdata/links.md:6: link "good.md#no-such-heading": good.md has no heading with that anchor`,
		`testdata/links.md:7: link "#nowhere": testdata/links.md has no heading with that anchor`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func brokenLinks(file string) []string {
	b, err := os.ReadFile(file)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	inFence := false
	for i, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
		}
		if inFence {
			continue
		}
		for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
			if err := checkLink(file, m[1]); err != nil {
				out = append(out, fmt.Sprintf("%s:%d: link %q: %v", file, i+1, m[1], err))
			}
		}
	}
	return out
}

func checkLink(from, link string) error {
	if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
		return nil
	}
	path, anchor, _ := strings.Cut(link, "#")
	target := from
	if path != "" {
		target = filepath.Join(filepath.Dir(from), path)
		if _, err := os.Stat(target); err != nil {
			if rel, _ := filepath.Rel(root, target); pending[rel] {
				return nil
			}
			return fmt.Errorf("no such file")
		}
	}
	if anchor == "" || !strings.HasSuffix(target, ".md") {
		return nil
	}
	b, err := os.ReadFile(target)
	if err != nil {
		return err
	}
	if !anchors(string(b))[anchor] {
		name := path
		if name == "" {
			name = from
		}
		return fmt.Errorf("%s has no heading with that anchor", name)
	}
	return nil
}

// anchors are the anchors GitHub gives a Markdown file's headings: lowercase,
// punctuation dropped, spaces to '-', a repeat suffixed -1, -2, ...
func anchors(md string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	inFence := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
		}
		m := heading.FindStringSubmatch(line)
		if inFence || m == nil {
			continue
		}
		s := strings.ReplaceAll(notSlug.ReplaceAllString(strings.ToLower(strings.TrimSpace(m[1])), ""), " ", "-")
		if n := seen[s]; n > 0 {
			out[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}
