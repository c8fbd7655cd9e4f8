package run

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ecr-build-cache/ecr-build-cache/internal/cacheref"
	"github.com/ecr-build-cache/ecr-build-cache/internal/ghout"
	"github.com/ecr-build-cache/ecr-build-cache/internal/solve"
)

// call runs the call input's subrequest instead of a build, as buildx --call
// does: no image, no cache; the metadata output holds the answer, as buildx's
// metadata file does. A check annotates each finding on its Dockerfile line
// and fails the step when it found any, as build-push-action does.
func (r *runner) call(ctx context.Context, call solve.Call, c solve.Caller, policy cacheref.Decision) error {
	req := r.request(policy)
	r.a.Group(fmt.Sprintf("Call %s on %s", call.Name, r.inputs.Dockerfile))
	res, err := commandsStopped(r, func() (*solve.CallResult, error) {
		res, err := solve.RunCall(ctx, c, req, call, r.out)
		if err == nil {
			// The answer quotes the Dockerfile: the build's text, not the action's.
			_, err = fmt.Fprint(r.out, res.Text)
		}
		return res, err
	})
	r.a.EndGroup()
	if err != nil {
		return err
	}
	for _, f := range res.Findings {
		msg := f.Rule + ": " + f.Detail
		if f.URL != "" {
			msg += "\nMore info: " + f.URL
		}
		r.annotate(f.Location, f.Description).Warningf("%s", msg)
	}
	meta, err := json.Marshal(res.Metadata)
	if err != nil {
		return fmt.Errorf("encode metadata output: %w", err)
	}
	if err := ghout.SetOutput(r.a, "metadata", string(meta)); err != nil {
		return err
	}
	if res.Status != 0 {
		first, _, _ := strings.Cut(res.Text, "\n")
		if call.Name != "lint" || call.Format == "json" {
			first = fmt.Sprintf("%s returned status %d", call.Name, res.Status)
		}
		return fmt.Errorf("%s", first)
	}
	return nil
}
