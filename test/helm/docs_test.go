package helm_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// opaqueValues are values whose shape is a Kubernetes type, documented as a
// whole rather than key by key.
var opaqueValues = map[string]bool{"resources": true}

// TestValuesDocumented keeps the promise that every value has a comment in
// values.yaml and a row in the README's values table.
func TestValuesDocumented(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir(), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(chartDir(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	walkValues(t, doc.Content[0], "", &paths)
	if len(paths) < 20 {
		t.Fatalf("found only %d values; is values.yaml parsed?", len(paths))
	}
	for _, p := range paths {
		if !strings.Contains(string(readme), "`"+p+"`") {
			t.Errorf("README.md has no row for `%s`", p)
		}
	}
}

func walkValues(t *testing.T, n *yaml.Node, prefix string, paths *[]string) {
	t.Helper()
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		path := strings.TrimPrefix(prefix+"."+key.Value, ".")
		if strings.TrimSpace(key.HeadComment) == "" {
			t.Errorf("values.yaml: %s (line %d) has no comment", path, key.Line)
		}
		*paths = append(*paths, path)
		if val.Kind == yaml.MappingNode && len(val.Content) > 0 && !opaqueValues[path] {
			walkValues(t, val, path, paths)
		}
	}
}
