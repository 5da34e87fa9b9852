package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/astronetes/taskgate/test/load/kit"
)

// p6Section reports the manager's memory while a transformation patches
// many large objects: growth ÷ total object bytes, and the growth with the
// largest objects ÷ the growth with the smallest (the same count), which
// is about 1 when the controller holds metadata only.
func (r *report) p6Section() string {
	var b strings.Builder
	p := r.p6
	mib := func(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
	b.WriteString("\n## P6: manager memory while a transformation patches large objects\n\n")
	rights := "the chart's requester-mode rules"
	if p.actAs == "controller" {
		rights += ", plus get/list/patch on the transformationRules as its own rights (what --act-as=controller needs)"
	}
	fmt.Fprintf(&b, "`taskgate manager %s --act-as=%s --max-transformation-objects=%d` (GODEBUG=gctrace=1) as `%s` with %s, on a fresh control plane. "+
		"For each size: %d ConfigMaps of that many bytes of data in a namespace of their own; the manager is started and left until its CPU use settles (idle); "+
		"then one one-off transformation TaskRun (created by `bench-admin`, of `%s`, with the requester recorded as the mutating webhook would, since no webhooks run here) adds an annotation to every one with a mergePatch, "+
		"and the manager's VmRSS is sampled every 20 ms until the run has finished (VmHWM read after). Growth = peak RSS during the run − idle RSS of the same process.\n\n",
		strings.Join(kit.ManagerArgs[1:], " "), p.actAs, p.objects, kit.ManagerUser, rights, p.objects, kit.AdminGroup)
	head := []string{"measure"}
	for _, run := range p.runs {
		head = append(head, fmt.Sprintf("%d × %d KiB", p.objects, run.size>>10))
	}
	row := func(name string, f func(p6Run) string) []string {
		out := []string{name}
		for _, run := range p.runs {
			out = append(out, f(run))
		}
		return out
	}
	table(&b, head, [][]string{
		row("objects' data, total", func(x p6Run) string { return mib(x.totalBytes) }),
		row("idle: VmRSS settled / VmHWM (start-up peak)", func(x p6Run) string { return mib(x.idleRSS) + " / " + mib(x.idleHWM) }),
		row("during the run: peak VmRSS sampled / VmHWM after", func(x p6Run) string { return mib(x.peakRSS) + " / " + mib(x.peakHWM) }),
		row("growth (peak − idle RSS)", func(x p6Run) string { return mib(x.growth()) }),
		row("growth ÷ objects' data", func(x p6Run) string { return fmt.Sprintf("%.3f", float64(x.growth())/float64(x.totalBytes)) }),
		row("live heap idle / largest heap during the run (gctrace)", func(x p6Run) string { return fmt.Sprintf("%.0f / %.0f MB", x.idleHeap, x.peakHeapMB) }),
		row("run took", func(x p6Run) string { return x.took.Round(10 * time.Millisecond).String() }),
		row("objects patched", func(x p6Run) string { return fmt.Sprint(x.patched) }),
	})
	if len(p.runs) == 0 {
		return b.String()
	}
	small, large := p.runs[0], p.runs[len(p.runs)-1]
	ratio := float64(large.growth()) / float64(max(small.growth(), 1<<20))
	if len(p.runs) > 1 {
		fmt.Fprintf(&b, "Growth with %d KiB objects ÷ growth with %d KiB objects (same count; the small run's growth counted as at least 1 MiB): **%.2f** for %.0f× the data. ",
			large.size>>10, small.size>>10, ratio, float64(large.size)/float64(small.size))
		b.WriteString("About 1 means the memory follows the number of objects, not their size (metadata only); about the size ratio means whole objects are held.\n")
		r.sum(fmt.Sprintf("P6 manager RSS growth, %d × %d KiB ÷ %d × %d KiB objects", p.objects, large.size>>10, p.objects, small.size>>10),
			fmt.Sprintf("%.2f", ratio), "≈ 1 (≤ 1.5)", verdict(ratio, 1.5, false))
	}
	g := float64(large.growth()) / float64(large.totalBytes)
	r.sum(fmt.Sprintf("P6 manager RSS growth while patching %d × %d KiB (%s)", p.objects, large.size>>10, mib(large.totalBytes)),
		fmt.Sprintf("%s (%.3f of the data; idle %s)", mib(large.growth()), g, mib(large.idleRSS)), "does not scale with object size", "")
	return b.String()
}
