package config

import (
	"encoding/csv"
	"fmt"
	"strings"
)

// List splits a list input the way docker/build-push-action does: entries are
// separated by newlines and, when commas is true, by commas too; each entry is
// trimmed; blank lines and lines starting with '#' are dropped; with commas, a
// value that contains a comma can be quoted CSV-style ("a,b").
func List(input string, commas bool) ([]string, error) {
	var out []string
	for _, line := range strings.Split(input, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !commas {
			out = append(out, line)
			continue
		}
		r := csv.NewReader(strings.NewReader(line))
		r.LazyQuotes = true
		r.TrimLeadingSpace = true
		fields, err := r.Read()
		if err != nil {
			return nil, fmt.Errorf("cannot split %q: %w", line, err)
		}
		for _, f := range fields {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
	}
	return out, nil
}

// KeyValues parses KEY=VALUE lines (build-args, labels); the value may contain '='
// and commas. Every malformed line is reported.
func KeyValues(input, name string) (map[string]string, []error) {
	lines, _ := List(input, false)
	if len(lines) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(lines))
	var errs []error
	for _, l := range lines {
		k, v, ok := strings.Cut(l, "=")
		if !ok || strings.TrimSpace(k) == "" {
			errs = append(errs, fmt.Errorf("%s: %q is not KEY=VALUE; write one KEY=VALUE per line", name, l))
			continue
		}
		m[strings.TrimSpace(k)] = v
	}
	return m, errs
}
