// Package schemas holds the JSON Schemas of the Task plugins and of the
// synchronization plugins, embedded in the binary and compiled once, and turns
// schema violations into Kubernetes field errors that name the bad field and
// say how to fix it.
package schemas

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

//go:embed *.json synchronization/*.json
var embedded embed.FS

// SyncDir is the folder, in the embedded files and in an override directory,
// that holds one schema per synchronization plugin.
const SyncDir = "synchronization"

// Schema is one compiled JSON Schema.
type Schema struct {
	// Name is the plugin the schema is for.
	Name string
	// Source is the schema document as written.
	Source   []byte
	compiled *jsonschema.Schema
	// byLocation indexes every subschema by its absolute location, so an error's
	// keyword location leads back to the schema that raised it.
	byLocation map[string]*jsonschema.Schema
	// mayDefault holds the subschemas under which ApplyDefaults can add a
	// value, so it skips the others.
	mayDefault map[*jsonschema.Schema]bool
}

// Set is every schema taskgate knows: one per Task plugin and one per
// synchronization plugin.
type Set struct {
	plugins     map[string]*Schema
	syncPlugins map[string]*Schema
}

// Load compiles the embedded schemas and, when overrideDir is not empty, adds
// or replaces synchronization-plugin schemas with the *.json files found in it
// (a plugin per file, named after the file).
func Load(overrideDir string) (*Set, error) {
	set := &Set{plugins: map[string]*Schema{}, syncPlugins: map[string]*Schema{}}
	if err := loadDir(embedded, ".", set.plugins); err != nil {
		return nil, err
	}
	if err := loadDir(embedded, SyncDir, set.syncPlugins); err != nil {
		return nil, err
	}
	if overrideDir != "" {
		if err := loadDir(os.DirFS(overrideDir), ".", set.syncPlugins); err != nil {
			return nil, fmt.Errorf("synchronization schemas from %s: %w", overrideDir, err)
		}
	}
	return set, nil
}

func loadDir(fsys fs.FS, dir string, into map[string]*Schema) error {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return fmt.Errorf("read schema dir %q: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		name := strings.TrimSuffix(e.Name(), ".json")
		src, err := fs.ReadFile(fsys, filepath.ToSlash(filepath.Join(dir, e.Name())))
		if err != nil {
			return fmt.Errorf("read schema %s: %w", e.Name(), err)
		}
		s, err := Compile(name, src)
		if err != nil {
			return err
		}
		into[name] = s
	}
	return nil
}

// Compile compiles one schema document.
func Compile(name string, src []byte) (*Schema, error) {
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	c.ExtractAnnotations = true // keeps "default" and "description", used for defaults and hints
	url := "mem:///" + name + ".json"
	if err := c.AddResource(url, bytes.NewReader(src)); err != nil {
		return nil, fmt.Errorf("schema %s: %w", name, err)
	}
	compiled, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("compile schema %s: %w", name, err)
	}
	s := &Schema{Name: name, Source: src, compiled: compiled, byLocation: map[string]*jsonschema.Schema{}}
	s.index(compiled)
	s.mayDefault = findDefaults(compiled)
	return s, nil
}

func (s *Schema) index(sc *jsonschema.Schema) {
	if sc == nil {
		return
	}
	if _, seen := s.byLocation[sc.Location]; seen {
		return
	}
	s.byLocation[sc.Location] = sc
	s.index(sc.Ref)
	for _, p := range sc.Properties {
		s.index(p)
	}
	if ap, ok := sc.AdditionalProperties.(*jsonschema.Schema); ok {
		s.index(ap)
	}
	s.index(sc.Items2020)
	if it, ok := sc.Items.(*jsonschema.Schema); ok {
		s.index(it)
	}
	for _, list := range [][]*jsonschema.Schema{sc.AllOf, sc.AnyOf, sc.OneOf, sc.PrefixItems} {
		for _, x := range list {
			s.index(x)
		}
	}
}

// Plugin returns the schema of a Task plugin.
func (set *Set) Plugin(name string) (*Schema, bool) {
	s, ok := set.plugins[name]
	return s, ok
}

// SyncPlugin returns the schema of a synchronization plugin.
func (set *Set) SyncPlugin(name string) (*Schema, bool) {
	s, ok := set.syncPlugins[name]
	return s, ok
}

// SyncPluginNames lists the synchronization plugins, sorted.
func (set *Set) SyncPluginNames() []string {
	return sortedKeys(set.syncPlugins)
}

// PluginNames lists the Task plugins that have a schema, sorted.
func (set *Set) PluginNames() []string {
	return sortedKeys(set.plugins)
}

func sortedKeys(m map[string]*Schema) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// UndescribedProperties lists the properties (as schema locations) that have
// no description; every property a user can write should say what it is.
func (s *Schema) UndescribedProperties() []string {
	var out []string
	for _, sc := range s.byLocation {
		for name, p := range sc.Properties {
			if describe(p) == "" {
				out = append(out, sc.Location+"/properties/"+name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// SyncPluginDefaults reports whether any synchronization-plugin schema has a
// default to fill in.
func (set *Set) SyncPluginDefaults() bool {
	for _, s := range set.syncPlugins {
		if s.HasDefaults() {
			return true
		}
	}
	return false
}
