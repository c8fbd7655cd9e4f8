// Package docs generates the reference pages from action.yml (docs/inputs.md and
// the README's tables, by hack/docgen) and, in its tests, checks every workflow
// snippet of README.md and docs/ against actionlint and action.yml.
package docs

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Action is what action.yml declares, in its order.
type Action struct {
	Groups  []Group
	Outputs []Output
}

// Group is a run of inputs under one group comment ("# -- Title: what").
type Group struct {
	Title, About string
	Inputs       []Input
}

// Input is one declared input.
type Input struct {
	Name, Description, Default string
	HasDefault                 bool
}

// Output is one declared output.
type Output struct {
	Name, Description string
}

// groupMark starts a comment line that opens a group of inputs.
const groupMark = "# -- "

// ParseAction reads action.yml. Every input must follow a group comment, so
// an input added anywhere joins the group it is written in.
func ParseAction(b []byte) (*Action, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse action.yml: %w", err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("parse action.yml: not a mapping")
	}
	a := &Action{}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		key, val := top.Content[i], top.Content[i+1]
		switch key.Value {
		case "inputs":
			if err := a.readInputs(val); err != nil {
				return nil, err
			}
		case "outputs":
			for j := 0; j+1 < len(val.Content); j += 2 {
				f, err := fields(val.Content[j+1])
				if err != nil {
					return nil, fmt.Errorf("action.yml: output %s: %w", val.Content[j].Value, err)
				}
				a.Outputs = append(a.Outputs, Output{Name: val.Content[j].Value, Description: f["description"]})
			}
		}
	}
	return a, nil
}

func (a *Action) readInputs(m *yaml.Node) error {
	for j := 0; j+1 < len(m.Content); j += 2 {
		key := m.Content[j]
		if title, about, ok := groupComment(key.HeadComment); ok {
			a.Groups = append(a.Groups, Group{Title: title, About: about})
		}
		if len(a.Groups) == 0 {
			return fmt.Errorf("action.yml: input %s comes before the first group comment (%q)", key.Value, groupMark+"Title: what the inputs do")
		}
		f, err := fields(m.Content[j+1])
		if err != nil {
			return fmt.Errorf("action.yml: input %s: %w", key.Value, err)
		}
		d, has := f["default"]
		g := &a.Groups[len(a.Groups)-1]
		g.Inputs = append(g.Inputs, Input{Name: key.Value, Description: f["description"], Default: d, HasDefault: has})
	}
	return nil
}

// groupComment finds the last group comment line of a head comment.
func groupComment(head string) (title, about string, ok bool) {
	for _, l := range strings.Split(head, "\n") {
		if rest, found := strings.CutPrefix(strings.TrimSpace(l), groupMark); found {
			title, about, _ = strings.Cut(rest, ":")
			title, about, ok = strings.TrimSpace(title), strings.TrimSpace(about), true
		}
	}
	return title, about, ok
}

// fields reads an input's or output's mapping of scalars.
func fields(n *yaml.Node) (map[string]string, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("not a mapping")
	}
	f := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		f[n.Content[i].Value] = strings.TrimSpace(n.Content[i+1].Value)
	}
	return f, nil
}

// Inputs are every input, in action.yml's order.
func (a *Action) Inputs() []Input {
	var out []Input
	for _, g := range a.Groups {
		out = append(out, g.Inputs...)
	}
	return out
}
