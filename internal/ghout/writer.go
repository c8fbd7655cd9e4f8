// Package ghout is what reaches the GitHub runner. Untrusted text (the build's
// output, branch names, anything from the repository or the event) must never
// become a workflow command on stdout, markup in the job summary, or an extra
// value in GITHUB_OUTPUT; this package is the one place that makes it inert.
//
// How actions/runner reads a step's stdout and stderr (src/Runner.Sdk/ProcessInvoker.cs,
// src/Runner.Common/ActionCommand.cs, src/Runner.Worker/ActionCommandManager.cs):
//   - a line ends at "\n", "\r" or "\r\n" (StreamReader.ReadLine);
//   - "::name props::data" is a command when the line, after .NET white space is
//     trimmed, starts with "::";
//   - the legacy "##[name props]data" is a command wherever "##[" occurs in the line;
//   - "::stop-commands::TOKEN" makes it ignore every command, ::add-mask:: included,
//     until a line "::TOKEN::".
//
// Its string comparisons are culture-sensitive (ICU on Linux), which ignores
// control and format characters; the checks here skip those too, so they defuse
// at least what the runner could read as a command.
package ghout

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/sethvargo/go-githubactions"
)

// maxLine is the longest line held back waiting for its newline; a longer one is
// written in pieces of this size, each on a line of its own.
const maxLine = 64 << 10

const (
	legacyPrefix = "##["
	// Visible stand-ins for line breaks inside untrusted text (Unicode control pictures).
	crPicture = "\u240d" // ␍
	lfPicture = "\u240a" // ␊
)

// Writer is the runner-facing stdout. Everything untrusted (BuildKit's plain
// progress, a build's RUN output) is written through Write or a Stream, which
// neutralise it line by line: a lone "\r" becomes "␍" so it cannot start a
// line, a "::" that would start a command gets a "\" before it, and every "##["
// becomes "##[\" (the runner's own escape for its start-action marker).
// Lines are written whole: a partial line is held until its newline, or until
// it reaches 64 KiB, or End.
//
// Between Begin and End the runner's command processing is also stopped, with a
// fresh random token each time, as defence in depth. AddMask and Commands write
// the action's own commands on lines of their own and, while commands are
// stopped, resume them around the command and stop them again with a new token.
//
// A Writer is safe for concurrent use. Write is one stream: concurrent callers
// that write a line in several calls must each use their own Stream.
type Writer struct {
	mu      sync.Mutex
	out     io.Writer
	token   string    // stop-commands token; "" while commands are processed
	err     error     // first failed write to out, returned from then on
	main    *stream   // Write's; set once, so Write reads it without mu
	streams []*stream // main and every Stream, for End
}

// NewWriter returns a Writer that writes to out, normally os.Stdout.
func NewWriter(out io.Writer) *Writer {
	w := &Writer{out: out}
	w.main = &stream{w: w}
	w.streams = []*stream{w.main}
	return w
}

// Write writes untrusted bytes, neutralised; it never fails for the input,
// only when writing to the runner failed.
func (w *Writer) Write(p []byte) (int, error) { return w.main.Write(p) }

// Stream returns another writer for untrusted bytes, with its own partial-line
// buffer, for a producer that runs concurrently with Write's.
func (w *Writer) Stream() io.Writer {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := &stream{w: w}
	w.streams = append(w.streams, s)
	return s
}

// Begin stops the runner's command processing until End, with a fresh random
// token.
func (w *Writer) Begin() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.token != "" {
		return errors.New("ghout: Begin called twice without End")
	}
	w.token = rand.Text()
	return w.emit([]byte("::stop-commands::" + w.token + "\n"))
}

// End writes every held partial line, ending it, and resumes command processing
// if Begin stopped it. The Writer stays usable.
func (w *Writer) End() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []byte
	for _, s := range w.streams {
		if len(s.buf) > 0 {
			out = appendLine(out, s.buf, false)
			s.buf = s.buf[:0]
		}
	}
	if w.token != "" {
		out = append(out, "::"+w.token+"::\n"...)
		w.token = ""
	}
	return w.emit(out)
}

// AddMask registers value as a secret with the runner, which then prints it as
// "***". It registers each form in which this package may print the value
// (maskForms). It works between Begin and End, from any goroutine: the
// commands go on lines of their own, never inside a held partial line.
func (w *Writer) AddMask(value string) error {
	cmds := maskCommands(value)
	if len(cmds) == 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.emit(w.resumed(cmds))
}

// minMaskPiece is the shortest line of a multi-line value that is masked on its
// own: shorter ones ("{", "}", a lone quote) hold nothing secret and would
// star every such character in the log.
const minMaskPiece = 3

// maskForms are the texts the runner must mask so that no part of value shows:
// the runner masks each log line on its own and ends a line at "\r" as at
// "\n", so each line of value, as is and as this package rewrites it in the
// log (Line: "##[" becomes "##[\"), in a summary table cell (Cell) and in a
// code span (Code: "|" becomes "\|"). A form that holds the line as is
// needs no mask of its own. Blank lines are skipped (the runner refuses them).
func maskForms(value string) []string {
	lines := splitLines(value)
	var forms []string
	for _, l := range lines {
		if strings.TrimSpace(l) == "" || len(lines) > 1 && len(strings.TrimSpace(l)) < minMaskPiece {
			continue
		}
		for _, f := range []string{l, Line(l), Cell(l), codeText(l)} {
			if (f == l || !strings.Contains(f, l)) && !slices.Contains(forms, f) {
				forms = append(forms, f)
			}
		}
	}
	return forms
}

// maskCommands are the ::add-mask:: lines for value's forms. They are written
// as they are, "##[" included: a line that starts with "::add-mask::" is read
// as that command, never as a legacy "##[" one.
func maskCommands(value string) []byte {
	var cmds []byte
	for _, f := range maskForms(value) {
		cmd := githubactions.Command{Name: "add-mask", Message: f}
		cmds = append(cmds, cmd.String()+"\n"...)
	}
	return cmds
}

// Commands returns the writer for the action's own output: build its
// *githubactions.Action with githubactions.WithWriter(w.Commands()). The first
// line of each Write may be a workflow command (go-githubactions writes one per
// call) and reaches the runner as one, even between Begin and End; any further
// lines, such as a multi-line value formatted into a.Infof, are neutralised like
// Write's. Untrusted text at the start of a message still needs Line. An
// ::add-mask:: line (a.AddMask) registers every form of its value, as AddMask.
func (w *Writer) Commands() io.Writer { return commandWriter{w} }

type commandWriter struct{ w *Writer }

func (c commandWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	first, rest, _ := bytes.Cut(p, []byte("\n"))
	first = bytes.TrimSuffix(first, []byte("\r"))
	if data, ok := bytes.CutPrefix(first, []byte("::add-mask::")); ok && len(rest) == 0 {
		// a.AddMask (one line, its value escaped): every form of the value, as Writer.AddMask.
		return len(p), c.w.AddMask(unescapeData(string(data)))
	}
	out := appendLine(nil, first, true)
	for len(rest) > 0 {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\n"))
		out = appendLine(out, bytes.TrimSuffix(l, []byte("\r")), false)
	}
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	if commandStart(first) >= 0 {
		out = c.w.resumed(out)
	}
	return len(p), c.w.emit(out)
}

// resumed wraps command lines so the runner processes them while commands are
// stopped: resume, the commands, stop again with a new token. Callers hold mu.
func (w *Writer) resumed(cmds []byte) []byte {
	if w.token == "" {
		return cmds
	}
	out := []byte("::" + w.token + "::\n")
	out = append(out, cmds...)
	w.token = rand.Text()
	return append(out, "::stop-commands::"+w.token+"\n"...)
}

// emit writes whole lines to the runner. Callers hold mu.
func (w *Writer) emit(b []byte) error {
	if w.err != nil || len(b) == 0 {
		return w.err
	}
	if _, err := w.out.Write(b); err != nil {
		w.err = fmt.Errorf("write to the runner log: %w", err)
	}
	return w.err
}

// stream is one producer's untrusted bytes, held until a line is complete.
type stream struct {
	w   *Writer
	buf []byte
}

func (s *stream) Write(p []byte) (int, error) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	s.buf = append(s.buf, p...)
	var out []byte
	rest := s.buf
	for {
		i := bytes.IndexByte(rest, '\n')
		if i >= 0 && i <= maxLine {
			out = appendLine(out, bytes.TrimSuffix(rest[:i], []byte("\r")), false)
			rest = rest[i+1:]
			continue
		}
		if len(rest) <= maxLine {
			break
		}
		n := maxLine
		for k := 1; k < utf8.UTFMax && !utf8.RuneStart(rest[n]); k++ {
			n-- // cut between runes, not inside one
		}
		out = appendLine(out, rest[:n], false)
		rest = rest[n:]
	}
	s.buf = append(s.buf[:0], rest...)
	return len(p), s.w.emit(out)
}

// Line makes an untrusted value safe to print inside one log line, for example
// a.Infof("ref: %s", ghout.Line(ref)): line breaks become "␍" and "␊", a leading
// "::" gets a "\" before it, and "##[" becomes "##[\". Two values joined at the
// start of a line can still form "::"; put text before them.
func Line(s string) string {
	return string(appendSafe(nil, []byte(s), false))
}

// appendLine appends the neutralised line and a newline.
func appendLine(dst, line []byte, command bool) []byte {
	return append(appendSafe(dst, line, command), '\n')
}

// appendSafe appends b with every line break made visible and "##[" broken
// once ("##[\" stays as it is, so that Line's text keeps the form its masks
// name when written again); unless command is true, a leading "::" is defused too.
func appendSafe(dst, b []byte, command bool) []byte {
	at := -1
	if !command {
		at = commandStart(b)
	}
	for i := 0; i < len(b); i++ {
		if i == at {
			dst = append(dst, '\\')
		}
		switch {
		case b[i] == '\r':
			dst = append(dst, crPicture...)
		case b[i] == '\n':
			dst = append(dst, lfPicture...)
		case bytes.HasPrefix(b[i:], []byte(legacyPrefix)):
			dst = append(dst, legacyPrefix+`\`...)
			i += len(legacyPrefix) - 1
			if i+1 < len(b) && b[i+1] == '\\' {
				i++ // already broken: Line's text written again stays as Line wrote it
			}
		default:
			dst = append(dst, b[i])
		}
	}
	return dst
}

// commandStart returns where the "::" of a line the runner could take as a
// command begins, or -1.
func commandStart(b []byte) int {
	i := 0
	for i < len(b) {
		r, n := utf8.DecodeRune(b[i:])
		if !skippable(r) {
			break
		}
		i += n
	}
	if bytes.HasPrefix(b[i:], []byte("::")) {
		return i
	}
	return -1
}

// skippable reports whether the runner may pass over r before a "::": it trims
// white space (.NET's set is Go's unicode.IsSpace), and its culture-sensitive
// StartsWith ignores control and format characters.
func skippable(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r) ||
		unicode.In(r, unicode.Cf, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector)
}

// unescapeData undoes the escaping of a command's data, as the runner does:
// one mapping after the other.
func unescapeData(s string) string {
	s = strings.ReplaceAll(s, "%0D", "\r")
	s = strings.ReplaceAll(s, "%0A", "\n")
	return strings.ReplaceAll(s, "%25", "%")
}

// splitLines splits s where the runner would: "\r\n", "\r" or "\n".
func splitLines(s string) []string {
	return strings.Split(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n"), "\n")
}
