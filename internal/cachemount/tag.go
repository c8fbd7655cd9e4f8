package cachemount

import (
	"slices"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
)

// Refs are the mounts artifact references of a run decided by d, in
// repository: the imports in d's priority order, and the export ("" when the
// run writes no cache, so an untrusted run never writes one). Their tags are
// cacheref.MountsTag under the decision's prefix, scope and platform, so they
// follow the layer cache's keys, and a cleanup of a key takes them too. A
// merged pull request's mounts never seed the default branch's: a compiler
// trusts them as-is, and the default branch's mounts seed every later branch.
func Refs(d cacheref.Decision, repository string) (imports []string, export string) {
	for _, k := range d.Reads {
		if k.Kind == cacheref.KindPR && slices.ContainsFunc(d.Merged, func(n int) bool { return cacheref.PRKey(n) == k }) {
			continue
		}
		imports = append(imports, repository+":"+d.MountsTag(k))
	}
	if d.Writes && !d.Untrusted {
		export = repository + ":" + d.MountsTag(d.Own)
	}
	return imports, export
}
