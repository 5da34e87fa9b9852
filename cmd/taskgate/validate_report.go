package main

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// summary counts the verdicts; its String is the line every run prints.
type summary struct {
	Valid   int `json:"valid"`
	Invalid int `json:"invalid"`
	Skipped int `json:"skipped"`
}

func (s summary) String() string {
	return fmt.Sprintf("summary: %d valid, %d invalid, %d skipped", s.Valid, s.Invalid, s.Skipped)
}

func summarize(results []result) summary {
	var s summary
	for _, r := range results {
		switch r.verdict() {
		case "valid":
			s.Valid++
		case "invalid":
			s.Invalid++
		default:
			s.Skipped++
		}
	}
	return s
}

// report writes the verdicts in the chosen output.
func report(results []result, s summary, output string, stdout, stderr io.Writer) error {
	switch output {
	case "json":
		return reportJSON(results, s, stdout)
	case "junit":
		return reportJUnit(results, s, stdout)
	}
	for _, r := range results {
		reportText(r, output == "yaml", stdout, stderr)
	}
	return nil
}

// reportText writes a verdict for people: valid Tasks and TaskRuns (or,
// with asYAML, the defaulted objects) to stdout, everything else to stderr.
func reportText(r result, asYAML bool, stdout, stderr io.Writer) {
	for _, w := range r.warnings {
		fmt.Fprintf(stderr, "%s: %s: warning: %s\n", r.doc, r.name(), w)
	}
	switch r.verdict() {
	case "skipped":
		fmt.Fprintf(stderr, "%s: skipped: %s\n", r.doc, r.skipped)
	case "invalid":
		fmt.Fprintf(stderr, "%s: %s is invalid:\n", r.doc, r.name())
		for _, e := range r.errs {
			fmt.Fprintf(stderr, "  * %s\n", e.Error())
		}
	default:
		if !asYAML {
			fmt.Fprintf(stdout, "%s: %s is valid\n", r.doc, r.name())
			return
		}
		out, err := yaml.Marshal(printable(r.object()))
		if err != nil {
			fmt.Fprintf(stderr, "%s: %s: encode: %v\n", r.doc, r.name(), err)
			return
		}
		fmt.Fprintf(stdout, "---\n%s", out)
	}
}

// printable drops the empty status and creation timestamp a Go struct would print.
func printable(obj client.Object) map[string]any {
	raw, _ := json.Marshal(obj)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return m
}

// jsonReport is -o json: every document's verdict and the summary.
type jsonReport struct {
	Summary summary      `json:"summary"`
	Results []jsonResult `json:"results"`
}

type jsonResult struct {
	Source       string      `json:"source"`
	Line         int         `json:"line"`
	Verdict      string      `json:"verdict"`
	Kind         string      `json:"kind,omitempty"`
	Namespace    string      `json:"namespace,omitempty"`
	Name         string      `json:"name,omitempty"`
	GenerateName string      `json:"generateName,omitempty"`
	Skipped      string      `json:"skipped,omitempty"`
	Errors       []jsonError `json:"errors,omitempty"`
	Warnings     []string    `json:"warnings,omitempty"`
}

// jsonError is a field error as kubectl shows it in a Status's causes.
type jsonError struct {
	Field   string `json:"field"`
	Reason  string `json:"reason"`
	Detail  string `json:"detail,omitempty"`
	Message string `json:"message"`
}

func reportJSON(results []result, s summary, w io.Writer) error {
	out := jsonReport{Summary: s, Results: []jsonResult{}}
	for _, r := range results {
		jr := jsonResult{Source: r.doc.file(), Line: r.doc.line, Verdict: r.verdict(), Skipped: r.skipped, Warnings: r.warnings}
		if o := r.object(); o != nil {
			jr.Kind = r.kind()
			jr.Namespace, jr.Name, jr.GenerateName = o.GetNamespace(), o.GetName(), o.GetGenerateName()
		}
		for _, e := range r.errs {
			jr.Errors = append(jr.Errors, jsonError{Field: e.Field, Reason: string(e.Type), Detail: e.Detail, Message: e.Error()})
		}
		out.Results = append(out.Results, jr)
	}
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(out)
}

// JUnit XML as CI servers (GitLab, Jenkins, GitHub test reporters) read
// it: a suite per input file, a test case per Task (and one, skipped, per
// document that is not a Task).
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

func reportJUnit(results []result, s summary, w io.Writer) error {
	out := junitSuites{Name: "taskgate validate", Tests: len(results), Failures: s.Invalid, Skipped: s.Skipped}
	index := map[string]int{}
	for _, r := range results {
		src := r.doc.file()
		i, ok := index[src]
		if !ok {
			i = len(out.Suites)
			index[src] = i
			out.Suites = append(out.Suites, junitSuite{Name: src})
		}
		suite := &out.Suites[i]
		c := junitCase{Name: fmt.Sprintf("%s (%s)", r.name(), r.doc), Classname: src}
		if len(r.warnings) > 0 {
			c.SystemOut = "warning: " + strings.Join(r.warnings, "\nwarning: ")
		}
		suite.Tests++
		switch r.verdict() {
		case "skipped":
			suite.Skipped++
			c.Name = fmt.Sprintf("%s (%s)", "document", r.doc)
			c.Skipped = &junitMessage{Message: r.skipped}
		case "invalid":
			suite.Failures++
			lines := make([]string, len(r.errs))
			for j, e := range r.errs {
				lines[j] = e.Error()
			}
			c.Failure = &junitMessage{
				Message: fmt.Sprintf("%s is invalid: %d field error(s)", r.name(), len(r.errs)),
				Type:    "Invalid",
				Text:    strings.Join(lines, "\n"),
			}
		}
		suite.Cases = append(suite.Cases, c)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	e := xml.NewEncoder(w)
	e.Indent("", "  ")
	if err := e.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
