package config

import (
	"reflect"
	"strings"
	"testing"
)

// List and KeyValues split like docker/build-push-action's Util.getList
// (csv-parse, relax_quotes): each case is what build-push-action gets from the
// same input.
func TestList(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in     string
		commas bool
		want   []string
	}{
		{"a,b\nc", true, []string{"a", "b", "c"}},
		{" a , b ,, \n\n# comment\n  # indented comment\n c", true, []string{"a", "b", "c"}},
		{`"x,y",z`, true, []string{"x,y", "z"}},
		// A record of one field is split at its commas even when quoted.
		{`"x,y"`, true, []string{"x", "y"}},
		// A quote inside an unquoted field is an ordinary character.
		{`a"b,c`, true, []string{`a"b`, "c"}},
		// A quote after a space does not open a quoted field.
		{`b, "c,d`, true, []string{"b", `"c`, "d"}},
		// A quote that does not close its field stays, with the opening one.
		{`"a"b,c`, true, []string{`"a"b`, "c"}},
		{"a,b\r\nc\r\n", true, []string{"a", "b", "c"}},
		{"K=a,b\n  L=c  ", false, []string{"K=a,b", "L=c"}},
		{`K="a,b"`, false, []string{`K="a,b"`}},
		{`"K=a,b"`, false, []string{"K=a,b"}},
		{"\"K=line 1\nline 2\",x\nL=2", false, []string{"K=line 1\nline 2,x", "L=2"}},
		{`"K=say ""hi"", twice"`, false, []string{`K=say "hi", twice`}},
		{`"#not a comment"`, false, []string{"#not a comment"}},
		{`""`, true, nil},
		{"", true, nil},
	} {
		got, err := List(tc.in, tc.commas)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("List(%q, %v) = %q, %v; want %q", tc.in, tc.commas, got, err, tc.want)
		}
	}
}

// A quote left open is an error naming the line it opens on (csv-parse's
// CSV_QUOTE_NOT_CLOSED), where Go's LazyQuotes would take the rest silently.
func TestListUnclosedQuote(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in     string
		commas bool
		line   string
	}{
		{`"unterminated`, true, "line 1:"},
		{"a\n\nb,\"c,d\ne", true, "line 3:"},
		{"A=1\n\"B=2\nC=3", false, "line 2:"},
		{`"a""`, true, "line 1:"},
	} {
		got, err := List(tc.in, tc.commas)
		if err == nil || !strings.HasPrefix(err.Error(), tc.line) || !strings.Contains(err.Error(), "never closed") {
			t.Errorf("List(%q) = %q, %v; want an unclosed-quote error at %s", tc.in, got, err, tc.line)
		}
	}
}

// Entries carry the line they start on, so errors can point at a line without
// showing it.
func TestEntriesLines(t *testing.T) {
	t.Parallel()
	got, err := entries("# c\nA=1\n\"B=x\n\ny\"\n\nC=3", true)
	want := []entry{{"A=1", 2}, {"B=x\n\ny", 3}, {"C=3", 7}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("entries = %+v, %v; want %+v", got, err, want)
	}
}

func TestKeyValues(t *testing.T) {
	t.Parallel()
	m, errs := KeyValues("A=1\n\"B=x,y\"\n  C = z=1 \nNOEQUALS\n=v", "build-args")
	if want := map[string]string{"A": "1", "B": "x,y", "C": " z=1"}; !reflect.DeepEqual(m, want) {
		t.Errorf("KeyValues = %q, want %q", m, want)
	}
	if len(errs) != 2 || errs[0].Error() != `build-args: line 4 has no '=' (not shown: it may hold a secret); write one KEY=VALUE per line` ||
		errs[1].Error() != `build-args: line 5 has no KEY before its '=' (not shown: it may hold a secret); write one KEY=VALUE per line` {
		t.Errorf("errors = %v", errs)
	}
	if _, errs := KeyValues("A=1\n\"B=2", "labels"); len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "labels: line 2: ") {
		t.Errorf("unclosed quote: %v", errs)
	}
}
