package ghout

import (
	"crypto/rand"
	"fmt"
	"os"
	"strings"

	"github.com/sethvargo/go-githubactions"
)

// SetOutput appends a step output to the file named by GITHUB_OUTPUT (read with
// a.Getenv), in the runner's heredoc form with a fresh random delimiter, as
// @actions/core writes it. go-githubactions' SetOutput uses the fixed delimiter
// "_GitHubActionsFileCommandDelimeter_", so a value containing that line ends
// early and the rest of it is read as more outputs.
func SetOutput(a *githubactions.Action, name, value string) error {
	return appendFileCommand(a, "GITHUB_OUTPUT", name, value)
}

// SaveState is SetOutput for the state passed to the post step (GITHUB_STATE).
func SaveState(a *githubactions.Action, name, value string) error {
	return appendFileCommand(a, "GITHUB_STATE", name, value)
}

func appendFileCommand(a *githubactions.Action, env, name, value string) (err error) {
	path := a.Getenv(env)
	if path == "" {
		return fmt.Errorf("write %q to %s: %s is not set; the action must run as a GitHub Actions step", name, env, env)
	}
	entry, err := heredoc(name, value, "ghadelimiter_"+rand.Text())
	if err != nil {
		return fmt.Errorf("write to %s: %w", env, err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", name, env, err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("write %q to %s: %w", name, env, cerr)
		}
	}()
	if _, err := f.WriteString(entry); err != nil {
		return fmt.Errorf("write %q to %s: %w", name, env, err)
	}
	return nil
}

// heredoc is one "name<<delim\nvalue\ndelim\n" entry of the runner's file-command
// format, which reads value lines up to the first line equal to delim.
func heredoc(name, value, delim string) (string, error) {
	if name == "" || strings.ContainsAny(name, "=<\r\n") {
		return "", fmt.Errorf("name %q: it must be non-empty and contain no '=', '<' or line break", name)
	}
	if strings.Contains(value, delim) {
		return "", fmt.Errorf("value of %q contains the delimiter %q", name, delim)
	}
	return name + "<<" + delim + "\n" + value + "\n" + delim + "\n", nil
}

// Output is one step output.
type Output struct{ Name, Value string }

// SetOutputs writes the outputs in order, stopping at the first failure.
func SetOutputs(a *githubactions.Action, outputs ...Output) error {
	for _, o := range outputs {
		if err := SetOutput(a, o.Name, o.Value); err != nil {
			return err
		}
	}
	return nil
}
