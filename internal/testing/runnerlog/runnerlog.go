// Package runnerlog replays what actions/runner does with a step's output, for
// tests: which lines are workflow commands, which masks ::add-mask:: registers,
// and what the log then shows with those masks applied. Comparisons are
// ordinal (the runner's culture-sensitive ones only ever match more, which
// internal/ghout covers by skipping control and format characters).
//
// Sources (actions/runner): ProcessInvoker's ReadLine, OutputManager.OnDataReceived,
// ActionCommand.TryParseV2/TryParse, ActionCommandManager.TryProcessCommand,
// AddMaskCommandExtension, SecretMasker.MaskSecrets, and for the step summary
// CreateStepSummaryCommand (masked line by line).
package runnerlog

import (
	"fmt"
	"strings"
	"unicode"
)

// Command is one command the runner acted on, with the line it was on.
type Command struct {
	Name, Data string
	Line       int
}

// Log is what the runner made of a step's stdout.
type Log struct {
	Lines    []string
	Commands []Command // stop-commands and resume (Name "resume") included
	Stopped  bool      // still waiting for the stop token at the end
	// Masks are the values ::add-mask:: registered, in order.
	Masks []string
	// Shown is what the log shows: every line that was not a command, the
	// commands the runner echoes, and each annotation's message, masked with
	// the masks registered before it.
	Shown []string
}

// Names lists the commands' names in order.
func (l Log) Names() []string {
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

// ReadLines splits as .NET's StreamReader.ReadLine does: "\r\n", "\r", "\n".
func ReadLines(s string) []string {
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

// Replay reads stdout as the runner reads a step's output.
func Replay(stdout string) Log {
	var log Log
	token := ""
	show := func(s string) { log.Shown = append(log.Shown, Mask(s, log.Masks)) }
	for n, line := range ReadLines(stdout) {
		log.Lines = append(log.Lines, line)
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
		switch {
		case !ok:
			show(line)
		case token != "" && strings.EqualFold(name, token):
			log.Commands = append(log.Commands, Command{Name: "resume", Data: name, Line: n})
			token = ""
			show(line)
		case token != "":
			show(line) // ignored while stopped: an ordinary line
		case strings.EqualFold(name, "stop-commands"):
			token = data
			log.Commands = append(log.Commands, Command{Name: name, Data: data, Line: n})
			show(line)
		default:
			log.Commands = append(log.Commands, Command{Name: name, Data: data, Line: n})
			switch strings.ToLower(name) {
			case "add-mask":
				if strings.TrimSpace(data) != "" {
					log.Masks = append(log.Masks, data)
				}
			case "error", "warning", "notice", "group", "debug":
				show("##[" + strings.ToLower(name) + "]" + data)
			}
		}
	}
	log.Stopped = token != ""
	return log
}

// Mask replaces every occurrence of every mask in s with "***", as the
// runner's SecretMasker does: overlapping and adjacent matches become one.
func Mask(s string, masks []string) string {
	covered := make([]bool, len(s))
	for _, m := range masks {
		if m == "" {
			continue
		}
		for i := 0; ; {
			j := strings.Index(s[i:], m)
			if j < 0 {
				break
			}
			for k := i + j; k < i+j+len(m); k++ {
				covered[k] = true
			}
			i += j + 1
		}
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if !covered[i] {
			b.WriteByte(s[i])
			continue
		}
		b.WriteString("***")
		for i+1 < len(s) && covered[i+1] {
			i++
		}
	}
	return b.String()
}

// MaskLines is a file the runner masks line by line (the step summary): its
// lines, each masked.
func MaskLines(s string, masks []string) []string {
	lines := ReadLines(s)
	for i, l := range lines {
		lines[i] = Mask(l, masks)
	}
	return lines
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

// ReadFileCommands parses a GITHUB_OUTPUT or GITHUB_STATE file as the runner's
// EnvFileKeyValuePairs does on Linux: NAME=VALUE lines, or NAME<<DELIM then
// value lines up to the first line equal to DELIM.
func ReadFileCommands(text string) ([][2]string, error) {
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
