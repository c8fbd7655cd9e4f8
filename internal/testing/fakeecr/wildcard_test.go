package fakeecr

import "testing"

func TestWildcardMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"cache-*", "cache-x", true},
		{"cache-*", "cache-", true},
		{"cache-*", "main-cache-x", false},
		{"*-cache", "main-cache", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "acb", false},
		{"a*a", "a", false},
		{"*", "", true},
		{"v1", "v1", true},
		{"v1", "v10", false},
		{"v1.?", "v1.2", false}, // only * is special
	} {
		if got := wildcardMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("wildcardMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}
