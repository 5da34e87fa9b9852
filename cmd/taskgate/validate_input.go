package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// readDocuments reads the YAML documents of the inputs: files, directories
// (their manifests) or - for standard input.
func readDocuments(inputs []string, stdin io.Reader) ([]document, error) {
	var docs []document
	for _, in := range inputs {
		paths, err := expand(in)
		if err != nil {
			return nil, err
		}
		for _, p := range paths {
			var r io.Reader = stdin
			if p != "-" {
				f, err := os.Open(p)
				if err != nil {
					return nil, err
				}
				defer f.Close()
				r = f
			}
			more, err := splitDocuments(p, r)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", p, err)
			}
			docs = append(docs, more...)
		}
	}
	return docs, nil
}

// splitDocuments splits a multi-document YAML stream where
// k8s.io/apimachinery's YAMLReader would (a line starting with "---" and
// nothing but a comment after it), keeping the line each document starts
// on, which that reader does not report.
func splitDocuments(source string, r io.Reader) ([]document, error) {
	var docs []document
	var buf bytes.Buffer
	start, lineNo := 0, 0
	flush := func() {
		if buf.Len() > 0 {
			docs = append(docs, document{source: source, line: max(start, 1), data: bytes.Clone(buf.Bytes())})
		}
		buf.Reset()
		start = 0
	}
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			lineNo++
			if rest, isSep := bytes.CutPrefix(line, []byte("---")); isSep && (len(bytes.TrimSpace(rest)) == 0 || bytes.TrimSpace(rest)[0] == '#') {
				flush()
			} else {
				if t := bytes.TrimSpace(line); start == 0 && len(t) > 0 && t[0] != '#' {
					start = lineNo
				}
				buf.Write(line)
			}
		}
		if errors.Is(err, io.EOF) {
			flush()
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// expand turns a directory into its manifest files, sorted.
func expand(in string) ([]string, error) {
	if in == "-" {
		return []string{"-"}, nil
	}
	info, err := os.Stat(in)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{in}, nil
	}
	var out []string
	err = filepath.WalkDir(in, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
			if !d.IsDir() {
				out = append(out, p)
			}
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}
