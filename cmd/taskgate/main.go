// Command taskgate is the Task and TaskRun admission webhook and controller
// (`taskgate manager`), a Task's runner from a terminal (`taskgate run`), and
// the same checks offline (`taskgate validate`, `taskgate schemas`).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

const usage = `taskgate makes Astronetes Tasks safe to admit and real to run.
A Task is a runbook (a plugin and its configuration); a TaskRun runs it.

Usage:
  taskgate manager [flags]              run the admission webhooks and the controller
  taskgate run TASK [-n NS] [--follow]  run a Task as the kubeconfig user: create a TaskRun, print its name;
                                        --follow prints its phases and Pod logs, exit status the run's
  taskgate validate -f FILE|DIR|- ...   check Tasks and TaskRuns offline, as the webhook would
  taskgate schemas [DIR]                write task.json, taskrun.json and the plugins' JSON Schemas (default ./taskgate-schemas)
  taskgate selftest [--namespace NS]    prove the installed webhooks refuse a wrong Task (helm test)
  taskgate version

Run "taskgate COMMAND -h" for a command's flags.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// buildVersion is the binary's version: version when set at build time,
// else the main module's version from the build info (a tagged `go
// install`, or the pseudo-version the go command stamps from the VCS),
// else "dev". `taskgate version` prints it, and taskgate_build_info
// carries it.
func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the process exit code:
// 0 success, 1 a failure the command reports (e.g. an invalid Task, a
// failed run), 2 usage (or, for `taskgate run`, no run started), 130 a
// followed run left on Ctrl-C.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "manager":
		return runManager(args[1:], stderr)
	case "validate":
		return runValidate(args[1:], stdin, stdout, stderr)
	case "schemas":
		return runSchemas(args[1:], stdout, stderr)
	case "selftest":
		return runSelftest(args[1:], stdout, stderr)
	case "run":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runRun(ctx, args[1:], stdout, stderr, newPodLogs)
	case "version", "--version":
		fmt.Fprintln(stdout, "taskgate", buildVersion())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "taskgate: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// subcommandFlags is the flag set of subcommand name: its errors go to
// stderr, and so does its usage (usage, then the flags' defaults).
func subcommandFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}
