package ghout

import (
	"fmt"
	"strings"
	"unicode"
)

// This file replays what actions/runner does with a step's output, with ordinal
// comparisons (the runner's culture-sensitive ones only ever match more, which
// the package's checks cover by skipping control and format characters):
// ProcessInvoker's ReadLine, OutputManager.OnDataReceived,
// ActionCommand.TryParseV2/TryParse and ActionCommandManager.TryProcessCommand.

// runnerCommand is one command the runner acted on, with the line it was on.
type runnerCommand struct {
	Name, Data string
	Line       int
}

// runnerLog is what the runner made of a step's stdout.
type runnerLog struct {
	Lines    []string
	Commands []runnerCommand // stop-commands and resume (Name "resume") included
	Stopped  bool            // still waiting for the stop token at the end
}

// names lists the commands' names in order.
func (l runnerLog) names() []string {
	var n []string
	for _, c := range l.Commands {
		n = append(n, c.Name)
	}
	return n
}

// registeredCommands are the runner's command extensions, plus stop-commands.
var registeredCommands = []string{
	"stop-commands", "add-mask", "add-matcher", "add-path", "debug", "echo", "error",
	"warning", "notice", "group", "endgroup", "remove-matcher", "save-state",
	"set-env", "set-output",
}

// readLines splits as .NET's StreamReader.ReadLine does: "\r\n", "\r", "\n".
func readLines(s string) []string {
	var lines []string
	for s != "" {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			lines = append(lines, s)
			break
		}
		lines = append(lines, s[:i])
		if strings.HasPrefix(s[i:], "\r\n") {
			i++
		}
		s = s[i+1:]
	}
	return lines
}

func replayRunner(stdout string) runnerLog {
	var log runnerLog
	token := ""
	for n, line := range readLines(stdout) {
		log.Lines = append(log.Lines, line)
		if !strings.Contains(line, "##[") && !strings.Contains(line, "::") {
			continue
		}
		registered := func(name string) bool {
			for _, c := range registeredCommands {
				if strings.EqualFold(c, name) {
					return true
				}
			}
			return token != "" && strings.EqualFold(token, name)
		}
		name, data, ok := parseCommandV2(line, registered)
		if !ok {
			name, data, ok = parseCommandLegacy(line, registered)
		}
		if !ok {
			continue
		}
		switch {
		case token != "" && strings.EqualFold(name, token):
			log.Commands = append(log.Commands, runnerCommand{Name: "resume", Data: name, Line: n})
			token = ""
		case token != "":
			// Ignored while stopped.
		case strings.EqualFold(name, "stop-commands"):
			token = data
			log.Commands = append(log.Commands, runnerCommand{Name: name, Data: data, Line: n})
		default:
			log.Commands = append(log.Commands, runnerCommand{Name: name, Data: data, Line: n})
		}
	}
	log.Stopped = token != ""
	return log
}

// parseCommandV2 is ActionCommand.TryParseV2: "::name props::data" after
// trimming leading white space.
func parseCommandV2(line string, registered func(string) bool) (name, data string, ok bool) {
	line = strings.TrimLeftFunc(line, unicode.IsSpace)
	if !strings.HasPrefix(line, "::") {
		return "", "", false
	}
	end := strings.Index(line[2:], "::")
	if end < 0 {
		return "", "", false
	}
	info := line[2 : 2+end]
	name, _, _ = strings.Cut(info, " ")
	if !registered(name) {
		return "", "", false
	}
	return name, unescapeData(line[2+end+2:]), true
}

// parseCommandLegacy is ActionCommand.TryParse: "##[name props]data" anywhere.
func parseCommandLegacy(line string, registered func(string) bool) (name, data string, ok bool) {
	start := strings.Index(line, "##[")
	if start < 0 {
		return "", "", false
	}
	rb := strings.IndexByte(line[start:], ']')
	if rb < 0 {
		return "", "", false
	}
	info := line[start+3 : start+rb]
	name, _, _ = strings.Cut(info, " ")
	if !registered(name) {
		return "", "", false
	}
	return name, unescapeData(line[start+rb+1:]), true
}

// unescapeData replaces in the runner's order, one mapping after the other.
func unescapeData(s string) string {
	s = strings.ReplaceAll(s, "%0D", "\r")
	s = strings.ReplaceAll(s, "%0A", "\n")
	return strings.ReplaceAll(s, "%25", "%")
}

// readFileCommands parses a GITHUB_OUTPUT or GITHUB_STATE file as the runner's
// EnvFileKeyValuePairs does on Linux: NAME=VALUE lines, or NAME<<DELIM then
// value lines up to the first line equal to DELIM.
func readFileCommands(text string) ([][2]string, error) {
	var out [][2]string
	lines := strings.SplitAfter(text, "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSuffix(lines[i], "\n")
		if line == "" {
			continue
		}
		eq, hd := strings.Index(line, "="), strings.Index(line, "<<")
		if eq >= 0 && (hd < 0 || eq < hd) {
			k, v, _ := strings.Cut(line, "=")
			out = append(out, [2]string{k, v})
			continue
		}
		if hd < 0 {
			return nil, fmt.Errorf("invalid format %q", line)
		}
		k, delim, _ := strings.Cut(line, "<<")
		if k == "" || delim == "" {
			return nil, fmt.Errorf("invalid format %q", line)
		}
		var value strings.Builder
		for i++; ; i++ {
			if i >= len(lines) {
				return nil, fmt.Errorf("matching delimiter not found %q", delim)
			}
			l := lines[i]
			if strings.TrimSuffix(l, "\n") == delim {
				break
			}
			if !strings.HasSuffix(l, "\n") {
				return nil, fmt.Errorf("EOF marker missing new line")
			}
			value.WriteString(l)
		}
		out = append(out, [2]string{k, strings.TrimSuffix(value.String(), "\n")})
	}
	return out, nil
}
