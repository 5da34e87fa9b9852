// Package registry is taskgate's one list of Task plugins and the check that
// every part of taskgate serves exactly that list.
//
// The list is v1alpha1.Plugins (beside the CRD's enum of spec.plugin). Each
// half keeps a static table from plugin to its implementation, one line per
// plugin, as cert-manager does: admission in webhook/plugins.go, the runners
// in controller/runner.go. Each builds its table through Must, so a plugin
// that one half lacks (or that only one half knows) stops the binary, and
// every test of that half, at start with a message saying which file to
// edit, instead of being admitted by the webhook and then failed with
// UnknownPlugin by the controller. registry_test.go checks the rest of a
// plugin: its schema, its testdata and the CRD's enum. docs/adding-a-plugin.md
// lists the steps.
package registry

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// Check returns an error naming each plugin in v1alpha1.Plugins that table
// lacks, and each plugin in table that v1alpha1.Plugins lacks. half and file
// say whose table it is and where it is written, for the message.
func Check[T any](half, file string, table map[v1alpha1.Plugin]T) error {
	var problems []string
	for _, p := range v1alpha1.Plugins {
		if _, ok := table[p]; !ok {
			problems = append(problems, fmt.Sprintf("plugin %q has no %s: add its entry to %s", p, half, file))
		}
	}
	for _, p := range slices.Sorted(maps.Keys(table)) {
		if !slices.Contains(v1alpha1.Plugins, p) {
			problems = append(problems, fmt.Sprintf("%s has a %s for %q, which is not in v1alpha1.Plugins: add it there (api/v1alpha1/task_types.go)", file, half, p))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("plugin registry: %s (see docs/adding-a-plugin.md)", strings.Join(problems, "; "))
	}
	return nil
}

// Must returns table, or panics with Check's error: it builds a half's
// static table at package initialisation, where a mismatch is a programming
// error that no run of the binary should get past.
func Must[T any](half, file string, table map[v1alpha1.Plugin]T) map[v1alpha1.Plugin]T {
	if err := Check(half, file, table); err != nil {
		panic(err)
	}
	return table
}

// Names returns the plugins of table, sorted.
func Names[T any](table map[v1alpha1.Plugin]T) []v1alpha1.Plugin {
	return slices.Sorted(maps.Keys(table))
}

// Unknown is the metric label of a plugin not in v1alpha1.Plugins.
const Unknown = "unknown"

// Label is p as a metric label value: p itself when it is in
// v1alpha1.Plugins, else Unknown, so that plugin names made up in a Task's
// spec (past a bypassed webhook) cannot grow a metric without bound. Both
// halves' metrics label plugins through it.
func Label(p v1alpha1.Plugin) string {
	if slices.Contains(v1alpha1.Plugins, p) {
		return string(p)
	}
	return Unknown
}
