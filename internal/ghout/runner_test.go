package ghout

import "github.com/ecr-build-cache/ecr-build-cache/internal/testing/runnerlog"

// The tests replay what actions/runner does with a step's output (runnerlog).
type runnerLog = runnerlog.Log

func replayRunner(stdout string) runnerLog { return runnerlog.Replay(stdout) }

func readLines(s string) []string { return runnerlog.ReadLines(s) }

func readFileCommands(text string) ([][2]string, error) { return runnerlog.ReadFileCommands(text) }
