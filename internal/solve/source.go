package solve

import (
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/solver/pb"
)

// Location is a line of a file the frontend read, such as the Dockerfile.
type Location struct {
	File string // as the frontend named it, e.g. "Dockerfile"
	Line int
}

// Warning is a frontend warning, with where it points when BuildKit says.
type Warning struct {
	Message  string
	Location *Location
}

// ErrorLocations returns the Dockerfile lines a failed build's error points at.
func ErrorLocations(err error) []Location {
	var out []Location
	for _, s := range errdefs.Sources(err) {
		if l := location(s.Info, s.Ranges); l != nil {
			out = append(out, *l)
		}
	}
	return out
}

func location(info *pb.SourceInfo, ranges []*pb.Range) *Location {
	if info == nil || info.Filename == "" || len(ranges) == 0 || ranges[0].GetStart() == nil {
		return nil
	}
	return &Location{File: info.Filename, Line: int(ranges[0].GetStart().GetLine())}
}
