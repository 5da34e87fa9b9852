package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/astronetes/taskgate/schemas"
)

func runSchemas(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("schemas", flag.ContinueOnError)
	fs.SetOutput(stderr)
	syncDir := fs.String("sync-schema-dir", "", "directory of extra or overriding synchronization-plugin schemas (<plugin>.json)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: taskgate schemas [--sync-schema-dir DIR] [OUTDIR]\n\nWrites the JSON Schema of each Task plugin, and of each synchronization plugin under synchronization/, for editors and CI linters.")
		fs.PrintDefaults()
	}
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
	written, err := set.WriteFiles(dir)
	if err != nil {
		fmt.Fprintln(stderr, "taskgate schemas:", err)
		return 1
	}
	for _, p := range written {
		fmt.Fprintln(stdout, p)
	}
	return 0
}
