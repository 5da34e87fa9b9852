package main

import (
	"fmt"
	"io"

	"github.com/astronetes/taskgate/schemas"
)

const schemasUsage = "Usage: taskgate schemas [--sync-schema-dir DIR] [OUTDIR]\n\n" +
	"Writes, for editors and CI linters, task.json (a whole Task: metadata, spec, and spec.config\n" +
	"checked against its plugin's schema), taskrun.json (a whole TaskRun: spec.taskRef, or\n" +
	"spec.taskSpec checked as a Task's spec is), the JSON Schema of each plugin, and of each\n" +
	"synchronization plugin under synchronization/. The files refer to each other by relative\n" +
	"paths and need no network, e.g. in YAML:\n" +
	"  # yaml-language-server: $schema=OUTDIR/task.json\n" +
	"  # yaml-language-server: $schema=OUTDIR/taskrun.json\n"

func runSchemas(args []string, stdout, stderr io.Writer) int {
	fs := subcommandFlags("schemas", schemasUsage, stderr)
	syncDir := fs.String("sync-schema-dir", "", "directory of extra or overriding synchronization-plugin schemas (<plugin>.json)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return 2
	}
	dir := "taskgate-schemas"
	if fs.NArg() == 1 {
		dir = fs.Arg(0)
	}
	set, err := schemas.Load(*syncDir)
	if err != nil {
		fmt.Fprintln(stderr, "taskgate schemas:", err)
		return 2
	}
	written, err := set.WriteBundle(dir)
	if err != nil {
		fmt.Fprintln(stderr, "taskgate schemas:", err)
		return 1
	}
	for _, p := range written {
		fmt.Fprintln(stdout, p)
	}
	return 0
}
