package run

import (
	"context"
	"fmt"
	"time"

	"github.com/ecr-build-cache/ecr-build-cache/internal/ecr"
	"github.com/ecr-build-cache/ecr-build-cache/internal/ghout"
	"github.com/ecr-build-cache/ecr-build-cache/internal/registry"
)

// refresher dates a cache tag's image and puts it again: ECR dates an image by
// its first push, and putting the same manifest again changes nothing
// (aws/containers-roadmap#2746), so a build that skips its export, or tags
// another cache, leaves the date where a lifecycle rule on push age
// (sinceImagePushed) will expire a cache every build still uses.
type refresher interface {
	PushedAt(ctx context.Context, tag string) (time.Time, error)
	Refresh(ctx context.Context, ref string, at time.Time) (string, error)
}

// ecrRefresher dates with DescribeImages and refreshes through the registry.
type ecrRefresher struct {
	ecr                 *ecr.Client
	reg                 *registry.Client
	account, repository string
}

func (e ecrRefresher) PushedAt(ctx context.Context, tag string) (time.Time, error) {
	return e.ecr.PushedAt(ctx, e.account, e.repository, tag)
}

func (e ecrRefresher) Refresh(ctx context.Context, ref string, at time.Time) (string, error) {
	return e.reg.Refresh(ctx, ref, at)
}

// refresher is nil where no registry dates images: only ECR's lifecycle
// rules expire by push date.
func (t target) refresher(repository string) refresher {
	if t.ecr == nil {
		return nil
	}
	return ecrRefresher{ecr: t.ecr, reg: t.client, account: t.account, repository: repository}
}

// keepAlive puts the export tag's manifest again, with a dated annotation
// (a new digest over the same layers), when ECR dates its image older than
// cache-refresh-days. It returns a note for the summary, "" when it did nothing;
// a failure is a warning.
func (r *runner) keepAlive(ctx context.Context, plan cachePlan) string {
	return r.keepTagAlive(ctx, "cache export", plan.ExportTag, plan.Export)
}

// keepTagAlive is keepAlive for tag (ref in full) of the cache repository;
// what names its phase in the log.
func (r *runner) keepTagAlive(ctx context.Context, what, tag, ref string) string {
	if r.refresh == nil || r.cache.CacheRefreshAfter == 0 {
		return ""
	}
	pushed, err := r.refresh.PushedAt(ctx, tag)
	if err != nil {
		r.a.Warningf("could not tell when %s was pushed, so an ECR lifecycle rule on push age may expire it while builds use it: %s", ref, ghout.Line(err.Error()))
		return ""
	}
	age := time.Since(pushed)
	if age < r.cache.CacheRefreshAfter {
		return ""
	}
	days := int(age.Hours() / 24)
	digest, err := r.refresh.Refresh(ctx, ref, time.Now())
	if err != nil {
		r.a.Warningf("could not refresh %s, which ECR dates %d days old (an ECR lifecycle rule on push age may expire it): %s", ref, days, ghout.Line(err.Error()))
		return ""
	}
	r.a.Infof("%s: %s put again as %s: ECR dated it %d days old, past cache-refresh-days", what, ref, digest, days)
	return fmt.Sprintf("; refreshed, ECR dated it %d days old", days)
}
