package main

import (
	"context"
	"errors"
	"io"
	"slices"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/client"
)

// solves are the durations of the builds (solves) buildkitd recorded in its
// build history that started at or after since, oldest first: how many times a
// tool asked BuildKit to build, and how long each took, measured by BuildKit.
func (b *bench) solves(ctx context.Context, since time.Time) ([]time.Duration, error) {
	c, err := client.New(ctx, b.s.BuildkitAddr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stream, err := c.ControlClient().ListenBuildHistory(ctx, &controlapi.BuildHistoryRequest{EarlyExit: true})
	if err != nil {
		return nil, err
	}
	type rec struct{ start, end time.Time }
	var recs []rec
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		r := ev.Record
		if ev.Type != controlapi.BuildHistoryEventType_COMPLETE || r == nil || r.CreatedAt == nil || r.CompletedAt == nil {
			continue
		}
		if start := r.CreatedAt.AsTime(); !start.Before(since) {
			recs = append(recs, rec{start, r.CompletedAt.AsTime()})
		}
	}
	slices.SortFunc(recs, func(a, b rec) int { return a.start.Compare(b.start) })
	var out []time.Duration
	for _, r := range recs {
		out = append(out, r.end.Sub(r.start))
	}
	return out, nil
}
