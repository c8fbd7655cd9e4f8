package buildkitconn

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/platforms"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// pickNode chooses the node of a buildx builder that builds the platforms, as
// buildx's node resolver does: for each platform the node configured for it
// (buildx create --platform), else one whose workers serve it, else the first
// node. buildx would then build each node's platforms there and merge the
// results; one solve cannot, so platforms that land on different nodes are an
// error naming them.
func pickNode(ctx context.Context, ng nodeGroup, want []string) (int, error) {
	if len(ng.Nodes) == 1 || len(want) == 0 {
		return 0, nil
	}
	ps := make([]ocispecs.Platform, len(want))
	for i, w := range want {
		p, err := platforms.Parse(w)
		if err != nil {
			return 0, fmt.Errorf("platforms: %q: %w", w, err)
		}
		ps[i] = platforms.Normalize(p)
	}
	configured := func(i int) []ocispecs.Platform { return ng.Nodes[i].Platforms }
	idx, perfect := matchNodes(len(ng.Nodes), ps, configured, platforms.OnlyStrict)
	var unreachable []string
	if !perfect {
		// Ask each node's workers what they serve, natively or emulated.
		served := make([][]ocispecs.Platform, len(ng.Nodes))
		for i, n := range ng.Nodes {
			p, err := ng.workerPlatforms(ctx, n)
			if err != nil {
				unreachable = append(unreachable, fmt.Sprintf("%s (%v)", n.Name, err))
			}
			served[i] = append(slices.Clone(n.Platforms), p...)
		}
		idx, _ = matchNodes(len(ng.Nodes), ps, func(i int) []ocispecs.Platform { return served[i] }, platforms.Only)
	}
	byNode := map[int][]string{}
	for i, n := range idx {
		byNode[n] = append(byNode[n], platforms.Format(ps[i]))
	}
	if len(byNode) == 1 {
		return idx[0], nil
	}
	var parts []string
	for i, n := range ng.Nodes {
		if p, ok := byNode[i]; ok {
			parts = append(parts, n.Name+": "+strings.Join(p, ","))
		}
	}
	msg := fmt.Sprintf("builder %q: the platforms are served by different nodes (%s), and this action builds on one node; "+
		"build each node's platforms in its own job (a matrix over platforms, with cache-scope), or set buildkit-host to one node that serves them all",
		ng.Name, strings.Join(parts, "; "))
	if len(unreachable) > 0 {
		msg += "; nodes not reached: " + strings.Join(unreachable, ", ")
	}
	return 0, fmt.Errorf("%s", msg)
}

// matchNodes gives each platform the node whose platforms match it best
// (node 0 when none does), and tells whether every platform matched.
func matchNodes(n int, want []ocispecs.Platform, nodePlatforms func(int) []ocispecs.Platform, matcher func(ocispecs.Platform) platforms.MatchComparer) ([]int, bool) {
	idx := make([]int, len(want))
	perfect := true
	for i, p := range want {
		best, bestPlatform := -1, ocispecs.Platform{}
		for j := range n {
			for _, p2 := range nodePlatforms(j) {
				m := matcher(p2)
				if m.Match(p) && (best == -1 || m.Less(p, bestPlatform)) {
					best, bestPlatform = j, p2
				}
			}
		}
		if best == -1 {
			best, perfect = 0, false
		}
		idx[i] = best
	}
	return idx, perfect
}

// workerPlatforms are the platforms a node's workers serve.
func (ng nodeGroup) workerPlatforms(ctx context.Context, n node) ([]ocispecs.Platform, error) {
	ep, err := ng.endpoint(n)
	if err != nil {
		return nil, err
	}
	c, err := Connect(ctx, ep)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ws, err := c.ListWorkers(ctx)
	if err != nil {
		return nil, err
	}
	var out []ocispecs.Platform
	for _, w := range ws {
		out = append(out, w.Platforms...)
	}
	return out, nil
}
