package config

import (
	"slices"
	"strings"
	"testing"
)

func TestReadCacheMounts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mounts, maxSize, shared string
		want, wantShared        []string
		wantMax                 int64
		err                     string
	}{
		{want: nil, wantMax: 2 << 30},
		{mounts: "auto", maxSize: "500MiB", want: []string{"auto"}, wantMax: 500 << 20},
		{mounts: "/root/.cache/go-build\ngomod, npm", maxSize: "1g", want: []string{"/root/.cache/go-build", "gomod", "npm"}, wantMax: 1 << 30},
		{mounts: "auto\ngomod", err: "cache-mounts: auto keeps every cache mount; give it alone"},
		{maxSize: "lots", err: `cache-mounts-max-size: "lots" is not a positive size such as 2GiB or 500MiB`},
		{maxSize: "0", err: `cache-mounts-max-size: "0" is not a positive size`},
		{mounts: "auto", shared: "go-build\n/root/.npm", want: []string{"auto"}, wantShared: []string{"go-build", "/root/.npm"}, wantMax: 2 << 30},
		{mounts: "auto", shared: "auto", err: "cache-mounts-shared-builder: name each mount"},
	} {
		env := validEnv(appDir(t))
		env["INPUT_CACHE-MOUNTS"] = tc.mounts
		env["INPUT_CACHE-MOUNTS-MAX-SIZE"] = tc.maxSize
		env["INPUT_CACHE-MOUNTS-SHARED-BUILDER"] = tc.shared
		c, err := Read(action(env), nil)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "(1 problems)") {
				t.Errorf("%q, %q: err = %v; want only %q", tc.mounts, tc.maxSize, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q, %q: %v", tc.mounts, tc.maxSize, err)
		case !slices.Equal(c.CacheMounts, tc.want) || c.CacheMountsMaxSize != tc.wantMax || !slices.Equal(c.CacheMountsSharedBuilder, tc.wantShared):
			t.Errorf("%q, %q, %q: mounts %q, max %d, shared %q; want %q, %d, %q", tc.mounts, tc.maxSize, tc.shared,
				c.CacheMounts, c.CacheMountsMaxSize, c.CacheMountsSharedBuilder, tc.want, tc.wantMax, tc.wantShared)
		}
	}
}
