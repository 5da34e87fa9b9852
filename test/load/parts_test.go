package main

import (
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/schemas"
	"github.com/astronetes/taskgate/test/load/kit"
	"github.com/astronetes/taskgate/webhook"
)

// BenchmarkP3Parts splits P3 (webhook BenchmarkValidateDefault) into the
// steps the Admitter takes for each seed sample, with the same libraries,
// to show where the time goes:
//
//	go test ./test/load -run '^$' -bench P3Parts -benchmem
func BenchmarkP3Parts(b *testing.B) {
	set, a, samples := benchInputs(b)
	root := field.NewPath("spec", "config")
	for _, s := range samples {
		task := kit.NewTask(s, "default", s.Name)
		if errs := a.Default(task); len(errs) > 0 {
			b.Fatal(errs)
		}
		raw := task.Spec.Config.Raw
		sc, _ := set.Plugin(string(task.Spec.Plugin))
		value, err := schemas.DecodeJSON(raw)
		if err != nil {
			b.Fatal(err)
		}
		for _, part := range []struct {
			name string
			run  func() error
		}{
			{"decode-generic", func() error { _, err := schemas.DecodeJSON(raw); return err }},
			{"schema-validate", func() error { return sc.Validate(value, root).ToAggregate() }},
			{"decode-typed", func() error { return decodeTyped(task.Spec.Plugin, raw) }},
			{"encode", func() error { _, err := json.Marshal(value); return err }},
		} {
			b.Run(s.Name+"/"+part.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := part.run(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// benchInputs are what the in-process benchmarks work on: the embedded
// schemas, an Admitter over them as the manager builds it by default, and
// the seed samples.
func benchInputs(b *testing.B) (*schemas.Set, *webhook.Admitter, []*v1alpha1.Task) {
	set, err := schemas.Load("")
	if err != nil {
		b.Fatal(err)
	}
	samples, err := kit.Samples("../..")
	if err != nil {
		b.Fatal(err)
	}
	return set, webhook.NewAdmitter(set), samples
}

// decodeTyped decodes as the Admitter's typed decode does.
func decodeTyped(p v1alpha1.Plugin, raw []byte) error {
	var v any = &v1alpha1.RunSynchronizationConfig{}
	switch p {
	case v1alpha1.PluginCustomImage:
		v = &v1alpha1.CustomImageConfig{}
	case v1alpha1.PluginTransformation:
		v = &v1alpha1.TransformationConfig{}
	}
	_, err := sigsjson.UnmarshalStrict(raw, v, sigsjson.DisallowDuplicateFields)
	return err
}
