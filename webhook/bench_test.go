package webhook

import (
	"sort"
	"testing"
)

// BenchmarkValidateDefault measures in-process defaulting plus validation of
// each seed sample: the work the two webhooks do per Task, without HTTP.
func BenchmarkValidateDefault(b *testing.B) {
	a := newTestAdmitter(b)
	samples := sampleTasks(b)
	names := make([]string, 0, len(samples))
	for n := range samples {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		orig := samples[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tk := orig.DeepCopy()
				if errs := a.Default(tk); len(errs) > 0 {
					b.Fatal(errs)
				}
				if errs, _ := a.Validate(tk); len(errs) > 0 {
					b.Fatal(errs)
				}
			}
		})
	}
}
