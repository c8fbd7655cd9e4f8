package config

import (
	"fmt"
	"strings"
)

// entry is one entry of a list input and the input line it starts on.
type entry struct {
	text string
	line int
}

// entries splits a list input as docker/build-push-action's Util.getList does
// (csv-parse with relax_quotes, relax_column_count, skip_empty_lines): records
// end at a newline outside quotes; fields are separated by commas; a field that
// starts with '"' is quoted: it may hold commas and newlines, '""' in it stands
// for '"', and it ends at a '"' followed by a comma, a newline or the end (a '"'
// followed by anything else is kept, with the opening one, and the field goes on
// unquoted); a '"' inside an unquoted field is an ordinary character; a quote
// still open at the end is an error, as csv-parse's CSV_QUOTE_NOT_CLOSED.
// As an extension, a record whose first non-blank character is '#' is a comment.
//
// With ignoreComma (inputs whose values may hold commas: build-args, secrets,
// ...) each record is one entry, its fields joined again with commas; else each
// field is an entry, and a record of one field is split at its commas, as
// build-push-action does. Entries are returned untrimmed, empty ones dropped.
// Errors name the line, never its text (it may be a secret); with an error come
// the entries before the open quote, so that checks of them still run.
func entries(input string, ignoreComma bool) ([]entry, error) {
	var (
		out       []entry
		fields    []string
		field     strings.Builder
		quoting   bool
		quoted    bool // the current field was quoted (so it counts even if empty)
		comment   bool
		line      = 1
		start     = 1 // the current record's first line
		quoteLine int
	)
	endField := func() {
		fields = append(fields, field.String())
		field.Reset()
		quoted = false
	}
	endRecord := func() {
		if len(fields) == 0 && field.Len() == 0 && !quoted {
			return // an empty line
		}
		endField()
		switch {
		case ignoreComma:
			fields = []string{strings.Join(fields, ",")}
		case len(fields) == 1:
			fields = strings.Split(fields[0], ",")
		}
		for _, f := range fields {
			if f != "" {
				out = append(out, entry{f, start})
			}
		}
		fields = nil
	}
	for i := 0; i < len(input); i++ {
		c := input[i]
		next := byte(0)
		if i+1 < len(input) {
			next = input[i+1]
		}
		switch {
		case quoting && c == '"' && next == '"':
			field.WriteByte('"')
			i++
		case quoting && c == '"':
			quoting, quoted = false, true
			if next != 0 && next != ',' && next != '\n' && next != '\r' {
				// relax_quotes: not a closing quote; both quotes stay in the field.
				s := field.String()
				field.Reset()
				field.WriteString(`"` + s + `"`)
			}
		case quoting:
			if c == '\n' {
				line++
			}
			field.WriteByte(c)
		case comment && c != '\n':
		case c == '\n' || c == '\r' && next == '\n':
			if c == '\r' {
				i++
			}
			comment = false
			endRecord()
			line++
			start = line
		case c == ',':
			endField()
		case c == '"' && field.Len() == 0:
			quoting, quoteLine = true, line
		case c == '#' && len(fields) == 0 && !quoted && strings.TrimSpace(field.String()) == "":
			comment = true
			field.Reset()
		default:
			field.WriteByte(c)
		}
	}
	if quoting {
		return out, fmt.Errorf("line %d: the quote that opens there is never closed; close it, write a '\"' inside a quoted value as '\"\"', or remove the quote", quoteLine)
	}
	endRecord()
	return out, nil
}

// List splits a list input into trimmed, non-empty entries, as
// docker/build-push-action does (see entries): separated by newlines and, when
// commas is true, by commas too. With an unclosed quote, it returns the entries
// before it and the error.
func List(input string, commas bool) ([]string, error) {
	es, err := entries(input, !commas)
	var out []string
	for _, e := range es {
		if t := strings.TrimSpace(e.text); t != "" {
			out = append(out, t)
		}
	}
	return out, err
}

// KeyValues parses KEY=VALUE entries (build-args, labels, annotations,
// secret-files), one per line; the value may contain '=' and commas, and a
// quoted entry may span lines. Every malformed line is reported, under name
// and by number, never by its text: a build-arg line without '=' may be a
// secret pasted whole.
func KeyValues(input, name string) (map[string]string, []error) {
	es, err := entries(input, true)
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	if len(es) == 0 {
		return nil, errs
	}
	m := make(map[string]string, len(es))
	for _, e := range es {
		l := strings.TrimSpace(e.text)
		if l == "" {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: line %d has no '=' (not shown: it may hold a secret); write one KEY=VALUE per line", name, e.line))
			continue
		case strings.TrimSpace(k) == "":
			errs = append(errs, fmt.Errorf("%s: line %d has no KEY before its '=' (not shown: it may hold a secret); write one KEY=VALUE per line", name, e.line))
			continue
		}
		m[strings.TrimSpace(k)] = v
	}
	return m, errs
}
