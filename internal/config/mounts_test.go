package config

import (
	"slices"
	"strings"
	"testing"
)

func TestReadCacheMounts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mounts, maxSize string
		want            []string
		wantMax         int64
		err             string
	}{
		{want: nil, wantMax: 2 << 30},
		{mounts: "auto", maxSize: "500MiB", want: []string{"auto"}, wantMax: 500 << 20},
		{mounts: "/root/.cache/go-build\ngomod, npm", maxSize: "1g", want: []string{"/root/.cache/go-build", "gomod", "npm"}, wantMax: 1 << 30},
		{mounts: "auto\ngomod", err: "cache-mounts: auto keeps every cache mount; give it alone"},
		{maxSize: "lots", err: `cache-mounts-max-size: "lots" is not a positive size such as 2GiB or 500MiB`},
		{maxSize: "0", err: `cache-mounts-max-size: "0" is not a positive size`},
	} {
		env := validEnv(appDir(t))
		env["INPUT_CACHE-MOUNTS"] = tc.mounts
		env["INPUT_CACHE-MOUNTS-MAX-SIZE"] = tc.maxSize
		c, err := Read(action(env), nil)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "(1 problems)") {
				t.Errorf("%q, %q: err = %v; want only %q", tc.mounts, tc.maxSize, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q, %q: %v", tc.mounts, tc.maxSize, err)
		case !slices.Equal(c.CacheMounts, tc.want) || c.CacheMountsMaxSize != tc.wantMax:
			t.Errorf("%q, %q: mounts %q, max %d; want %q, %d", tc.mounts, tc.maxSize, c.CacheMounts, c.CacheMountsMaxSize, tc.want, tc.wantMax)
		}
	}
}
