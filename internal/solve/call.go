package solve

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/moby/buildkit/client"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/frontend/subrequests/lint"
)

// Call is a frontend subrequest run instead of a build (the call input), as
// buildx's --call: lint (call: check), outline or targets.
type Call struct {
	Name         string // lint, outline or targets
	Format       string // json shows result.json; otherwise the text
	IgnoreStatus bool   // a failed check does not fail the step
}

// Caller is the part of *client.Client a call needs: a gateway build, whose
// result carries the subrequest's answer (a plain solve drops it).
type Caller interface {
	Build(ctx context.Context, opt client.SolveOpt, product string, buildFunc gateway.BuildFunc, statusChan chan *client.SolveStatus) (*client.SolveResponse, error)
}

// CallResult is what the frontend answered.
type CallResult struct {
	Text string // what to show: result.txt, or result.json with format=json
	// Findings are the lint rules a check found broken.
	Findings []Finding
	// Status is nonzero when a check found something (unless IgnoreStatus).
	Status int
	// Metadata is the frontend's answer as buildx's --metadata-file holds it
	// (result.json, result.txt, ...).
	Metadata map[string]string
}

// Finding is one lint finding, with where it points.
type Finding struct {
	Rule, Description, URL, Detail string
	Location                       *Location
}

// RunCall asks the Dockerfile frontend for call's answer about req's
// Dockerfile, as buildx does: the request id frontend.<name> through a
// gateway build. Nothing is exported.
func RunCall(ctx context.Context, c Caller, req Request, call Call, progress io.Writer) (*CallResult, error) {
	req.Tags, req.Push, req.PushByDigest, req.ImageAttrs, req.Outputs, req.CacheExport = nil, false, false, nil, nil, ""
	opt, err := solveOpt(req)
	if err != nil {
		return nil, err
	}
	attrs := opt.FrontendAttrs
	attrs["requestid"] = "frontend." + call.Name
	attrs["frontend.caps"] = "moby.buildkit.frontend.subrequests+forward"
	opt.Frontend, opt.FrontendAttrs, opt.Internal = "", nil, true
	var meta map[string][]byte
	run := func(ctx context.Context, ch chan *client.SolveStatus) (*client.SolveResponse, error) {
		return c.Build(ctx, opt, "ecr-build-cache", func(ctx context.Context, gc gateway.Client) (*gateway.Result, error) {
			res, err := gc.Solve(ctx, gateway.SolveRequest{Frontend: "dockerfile.v0", FrontendOpt: attrs})
			if err != nil {
				return nil, err
			}
			meta = res.Metadata
			return res, nil
		}, ch)
	}
	if _, err := solve(ctx, run, progress, func(*client.SolveStatus) {}); err != nil {
		return nil, fmt.Errorf("%s %s: %w", call.Name, req.Dockerfile, err)
	}
	return callResult(call, meta)
}

// callResult reads the subrequest's metadata as buildx's printResult does.
func callResult(call Call, meta map[string][]byte) (*CallResult, error) {
	res := &CallResult{Text: string(meta["result.txt"]), Metadata: map[string]string{}}
	for k, v := range meta {
		res.Metadata[k] = string(v)
	}
	if call.Format == "json" {
		res.Text = string(meta["result.json"])
	}
	if call.Name == "lint" {
		var lr lint.LintResults
		if dt, ok := meta["result.json"]; ok {
			if err := json.Unmarshal(dt, &lr); err != nil {
				return nil, fmt.Errorf("read the check's result: %w", err)
			}
		}
		for _, w := range lr.Warnings {
			f := Finding{Rule: w.RuleName, Description: w.Description, URL: w.URL, Detail: w.Detail}
			if w.Location != nil && w.Location.SourceIndex >= 0 && int(w.Location.SourceIndex) < len(lr.Sources) {
				f.Location = location(lr.Sources[w.Location.SourceIndex], w.Location.Ranges)
			}
			res.Findings = append(res.Findings, f)
		}
		if lr.Error != nil {
			// The Dockerfile did not parse: no check could run.
			return nil, fmt.Errorf("check: %s", lr.Error.Message)
		}
		if call.Format != "json" {
			switch n := len(res.Findings); n {
			case 0:
				res.Text += "Check complete, no warnings found.\n"
			case 1:
				res.Text = "Check complete, 1 warning has been found!\n" + res.Text
			default:
				res.Text = fmt.Sprintf("Check complete, %d warnings have been found!\n", n) + res.Text
			}
		}
	}
	if v, ok := meta["result.statuscode"]; ok && !call.IgnoreStatus {
		res.Status, _ = strconv.Atoi(string(v))
	}
	return res, nil
}
