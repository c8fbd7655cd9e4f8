package config

import (
	"slices"
	"strings"

	"github.com/docker/go-units"
)

// readMounts reads cache-mounts, cache-mounts-max-size and
// cache-mounts-shared-builder.
func (c *Config) readMounts(p *problems, in func(string) string, list func(string, bool) []string) {
	isAuto := func(e string) bool { return strings.EqualFold(e, "auto") }
	l := list("cache-mounts", true)
	if len(l) > 1 && slices.ContainsFunc(l, isAuto) {
		p.add("cache-mounts: auto keeps every cache mount; give it alone, or list mount ids or targets without it")
	}
	c.CacheMounts = l
	v := in("cache-mounts-max-size")
	n, err := units.RAMInBytes(v)
	if err != nil || n <= 0 {
		p.add("cache-mounts-max-size: %q is not a positive size such as 2GiB or 500MiB", v)
	}
	c.CacheMountsMaxSize = n
	// By name only: saving from a builder others use is a decision per mount.
	shared := list("cache-mounts-shared-builder", true)
	if slices.ContainsFunc(shared, isAuto) {
		p.add("cache-mounts-shared-builder: name each mount to save from a builder this action did not start (its id or target); auto is not accepted here")
	}
	c.CacheMountsSharedBuilder = shared
}
