package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/load/kit"
)

// p3Command is the in-process benchmark P3 reports, as a user would run it.
var p3Command = []string{"go", "test", "./webhook", "-run", "^$", "-bench", "BenchmarkValidateDefault", "-benchmem"}

// p3CreateShare is P3's target: validate+default of a sample takes at most
// this share of the median Task create latency measured in the same run.
const p3CreateShare = 0.05

// p3Create is P3's yardstick: Task creates through the API server with
// taskgate's webhooks as installed (mode taskgate), one client, as P1
// creates them, in the same run as the benchmark.
type p3Create struct {
	creates  int
	median   time.Duration
	bySample map[string]time.Duration
}

// runP3Create creates the samples in turn `creates` times on a control
// plane of its own, after warm-ups, and returns the median latency.
func runP3Create(ctx context.Context, root string, samples []*v1alpha1.Task, names []string, creates int) (*p3Create, error) {
	var out *p3Create
	err := withBenchEnv(root, func(e *benchEnv) error {
		res, err := runP1(ctx, e, p1Run{kind: kindTask, ns: "p3", samples: samples, names: names, creates: creates, rounds: 2, concs: []int{1}, modes: []string{modeTaskgate}})
		if err != nil {
			return err
		}
		out = &p3Create{creates: creates, median: res.lat[1][modeTaskgate].Median(), bySample: map[string]time.Duration{}}
		for s, l := range res.bySample[1][modeTaskgate] {
			out.bySample[s] = l.Median()
		}
		return nil
	})
	return out, err
}

type p3Row struct {
	name                    string
	nsPerOp, bPerOp, allocs float64 // medians over the runs
	minNsPerOp              float64 // the fastest run: the least disturbed by other work
	runs                    int
}

// runP3 runs the benchmark `count` times and takes each figure's median.
func runP3(root string, count int) ([]p3Row, string, error) {
	args := append(append([]string{}, p3Command[1:]...), "-count", strconv.Itoa(count))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p3Command[0], args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	command := strings.Join(append([]string{p3Command[0]}, quoteArgs(args)...), " ")
	if err != nil {
		return nil, command, fmt.Errorf("%s: %w\n%s", command, err, out)
	}
	type acc struct{ ns, b, allocs []float64 }
	by := map[string]*acc{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || !strings.HasPrefix(f[0], "BenchmarkValidateDefault/") {
			continue
		}
		name := strings.TrimPrefix(f[0], "BenchmarkValidateDefault/")
		if i := strings.LastIndex(name, "-"); i > 0 {
			name = name[:i] // the GOMAXPROCS suffix
		}
		a := by[name]
		if a == nil {
			a = &acc{}
			by[name] = a
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				a.ns = append(a.ns, v)
			case "B/op":
				a.b = append(a.b, v)
			case "allocs/op":
				a.allocs = append(a.allocs, v)
			}
		}
	}
	var rows []p3Row
	for name, a := range by {
		rows = append(rows, p3Row{name: name, nsPerOp: kit.MedianFloat(a.ns), bPerOp: kit.MedianFloat(a.b),
			allocs: kit.MedianFloat(a.allocs), runs: len(a.ns), minNsPerOp: slices.Min(a.ns)})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].name < rows[j].name })
	if len(rows) == 0 {
		return nil, command, fmt.Errorf("%s: no benchmark lines in\n%s", command, out)
	}
	return rows, command, nil
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "^$ ") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return out
}
