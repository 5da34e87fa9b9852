package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

const (
	// maxFailures bounds status.transformation.failures.
	maxFailures = 20
	// listPageSize bounds the objects held in memory per list call.
	listPageSize = 500
	// fieldManager names taskgate in managedFields of what it patches.
	fieldManager = "taskgate"
)

// transformationRunner patches existing objects, once.
//
// A transformation must never apply its operations twice (a JSON patch that
// appends to a list is not idempotent), so before the first patch it claims
// the Task by writing an empty status.transformation, and records the counts
// in the same reconcile once done. A reconcile that finds the claim but no
// result knows an earlier one stopped mid-way and fails the Task
// (ReasonInterrupted) instead of patching again.
type transformationRunner struct {
	*deps
	mapper  meta.RESTMapper
	dynamic dynamic.Interface
}

// target is one resource to patch and where to look for it.
type target struct {
	gvr        schema.GroupVersionResource
	namespaces []string // [""] for a cluster-scoped resource
}

// operation is one patch request body.
type operation struct {
	patchType types.PatchType
	data      []byte
}

func (t *transformationRunner) run(ctx context.Context, task *v1alpha1.Task, cp checkpointer) (time.Duration, error) {
	if task.Status.Transformation != nil {
		fail(task, ReasonInterrupted, "an earlier attempt stopped while patching and did not record which objects it patched; "+
			"the operations are not applied twice: check the objects and create a new Task to run again")
		return 0, nil
	}
	cfg, err := decodeConfig[v1alpha1.TransformationConfig](task)
	if err != nil {
		return 0, failPermanent(task, err)
	}
	ops, selector, err := compile(cfg)
	if err != nil {
		return 0, failPermanent(task, err)
	}
	targets, err := t.resolve(task, cfg)
	if err != nil || isFinished(&task.Status) { // finished: a resource is not served
		return 0, err
	}

	task.Status.Transformation = &v1alpha1.TransformationStatus{}
	setProgress(task, ReasonPatching, "patching objects")
	if err := cp.save(ctx); err != nil {
		return 0, fmt.Errorf("claim task before patching: %w", err)
	}

	res := t.apply(ctx, targets, selector, cfg.Names, ops)
	task.Status.Transformation = res
	msg := fmt.Sprintf("matched %d objects: %d patched, %d unchanged, %d failed", res.Matched, res.Patched, res.Unchanged, res.Failed)
	log.FromContext(ctx).Info("transformation applied", "matched", res.Matched, "patched", res.Patched,
		"unchanged", res.Unchanged, "failed", res.Failed)
	// The outcome's Event (Succeeded or Failed, sent once the status is
	// written) carries msg: no separate Event for the patching.
	if res.Failed > 0 {
		fail(task, ReasonPatchFailed, fmt.Sprintf("%s; first failure: %s: %s", msg, res.Failures[0].Object, res.Failures[0].Message))
	} else {
		succeed(task, ReasonPatched, msg)
	}
	// The result cannot be computed again, so try harder than usual to keep
	// it: a write lost here would turn into ReasonInterrupted.
	retriable := func(err error) bool { return !errors.Is(err, errStaleStatus) && !errors.Is(err, errTaskGone) }
	if err := retry.OnError(retry.DefaultBackoff, retriable, func() error { return cp.save(ctx) }); err != nil {
		return 0, fmt.Errorf("record transformation result: %w", err)
	}
	return 0, nil
}

// compile checks the operations and the label selector and turns them into
// what the API calls take.
func compile(cfg *v1alpha1.TransformationConfig) ([]operation, labels.Selector, error) {
	if len(cfg.Resources) == 0 || len(cfg.Operations) == 0 {
		return nil, nil, fmt.Errorf("%w: resources and operations must each name at least one entry", errInvalidConfig)
	}
	ops := make([]operation, 0, len(cfg.Operations))
	for i, op := range cfg.Operations {
		switch {
		case op.JSONPatch != nil && op.MergePatch == nil:
			ops = append(ops, operation{types.JSONPatchType, op.JSONPatch.Raw})
		case op.MergePatch != nil && op.JSONPatch == nil:
			ops = append(ops, operation{types.MergePatchType, op.MergePatch.Raw})
		default:
			return nil, nil, fmt.Errorf("%w: operations[%d] must set exactly one of jsonPatch and mergePatch", errInvalidConfig, i)
		}
	}
	selector := labels.Everything()
	if cfg.LabelSelector != nil {
		s, err := metav1.LabelSelectorAsSelector(cfg.LabelSelector)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: labelSelector: %v", errInvalidConfig, err)
		}
		selector = s
	}
	return ops, selector, nil
}

// resolve maps every listed resource through the API server's discovery. It
// fails the Task if one is not served, and returns an error only for what a
// retry may fix (discovery unavailable).
func (t *transformationRunner) resolve(task *v1alpha1.Task, cfg *v1alpha1.TransformationConfig) ([]target, error) {
	namespaces := slices.Compact(slices.Sorted(slices.Values(cfg.Namespaces)))
	if len(namespaces) == 0 {
		namespaces = []string{task.Namespace}
	}
	var targets []target
	seen := map[schema.GroupVersionResource]bool{}
	for _, r := range cfg.Resources {
		gvr := schema.GroupVersionResource{Group: r.Group, Version: r.Version, Resource: r.Resource}
		mapping, err := t.restMapping(gvr)
		if meta.IsNoMatchError(err) {
			fail(task, ReasonResourceNotFound, fmt.Sprintf("resource %q is not served by the API server", gvrString(gvr)))
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("discover resource %s: %w", gvrString(gvr), err)
		}
		// Patch exactly the resource the webhook authorised, not what the
		// mapper made of it (a singular or short name).
		if mapping.Resource != gvr {
			fail(task, ReasonResourceNotFound, fmt.Sprintf("resource %q is not served by the API server; did you mean %q?",
				gvrString(gvr), gvrString(mapping.Resource)))
			return nil, nil
		}
		if seen[gvr] {
			continue
		}
		seen[gvr] = true
		tg := target{gvr: gvr, namespaces: namespaces}
		if mapping.Scope.Name() != meta.RESTScopeNameNamespace {
			tg.namespaces = []string{""}
		}
		targets = append(targets, tg)
	}
	return targets, nil
}

func (t *transformationRunner) restMapping(gvr schema.GroupVersionResource) (*meta.RESTMapping, error) {
	gvk, err := t.mapper.KindFor(gvr)
	if err != nil {
		return nil, err
	}
	return t.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
}

// apply lists the objects of every target and patches each. Failures are
// counted, never returned: the Task is claimed, so this runs once.
func (t *transformationRunner) apply(ctx context.Context, targets []target, selector labels.Selector, names []string, ops []operation) *v1alpha1.TransformationStatus {
	res := &v1alpha1.TransformationStatus{}
	for _, tg := range targets {
		for _, ns := range tg.namespaces {
			objs, err := t.list(ctx, tg.gvr, ns, selector)
			if err != nil {
				res.Failed++
				addFailure(res, objectRef(tg.gvr, ns, "*"), fmt.Sprintf("list: %v", err))
				continue
			}
			for _, obj := range objs {
				if len(names) > 0 && !slices.Contains(names, obj.GetName()) {
					continue
				}
				res.Matched++
				moved, err := t.patch(ctx, tg.gvr, obj, ops)
				switch {
				case err != nil:
					res.Failed++
					addFailure(res, objectRef(tg.gvr, ns, obj.GetName()), err.Error())
					log.FromContext(ctx).Info("patch failed", "resource", gvrString(tg.gvr),
						"object", objectRef(tg.gvr, ns, obj.GetName()), "error", err.Error())
				case moved:
					res.Patched++
				default:
					res.Unchanged++
				}
			}
		}
	}
	return res
}

// list returns every object of gvr in ns that matches selector, page by page.
func (t *transformationRunner) list(ctx context.Context, gvr schema.GroupVersionResource, ns string, selector labels.Selector) ([]unstructured.Unstructured, error) {
	var objs []unstructured.Unstructured
	opts := metav1.ListOptions{LabelSelector: selector.String(), Limit: listPageSize}
	for {
		page, err := t.dynamic.Resource(gvr).Namespace(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		objs = append(objs, page.Items...)
		if opts.Continue = page.GetContinue(); opts.Continue == "" {
			return objs, nil
		}
	}
}

// patch applies ops in order to obj and reports whether its resourceVersion
// moved, that is whether the operations changed anything.
func (t *transformationRunner) patch(ctx context.Context, gvr schema.GroupVersionResource, obj unstructured.Unstructured, ops []operation) (bool, error) {
	client := t.dynamic.Resource(gvr).Namespace(obj.GetNamespace())
	rv := obj.GetResourceVersion()
	for i, op := range ops {
		out, err := client.Patch(ctx, obj.GetName(), op.patchType, op.data, metav1.PatchOptions{FieldManager: fieldManager})
		if err != nil {
			return false, fmt.Errorf("operations[%d]: %w", i, err)
		}
		rv = out.GetResourceVersion()
	}
	return rv != obj.GetResourceVersion(), nil
}

// addFailure records a failed object while there is room; res.Failed counts
// them all.
func addFailure(res *v1alpha1.TransformationStatus, object, message string) {
	if len(res.Failures) < maxFailures {
		res.Failures = append(res.Failures, v1alpha1.ObjectFailure{Object: object, Message: message})
	}
}

// objectRef names an object as "<group>/<resource> <namespace>/<name>" (the
// core group is spelled "core", a cluster-scoped object has no namespace).
func objectRef(gvr schema.GroupVersionResource, ns, name string) string {
	group := gvr.Group
	if group == "" {
		group = "core"
	}
	if ns == "" {
		return fmt.Sprintf("%s/%s %s", group, gvr.Resource, name)
	}
	return fmt.Sprintf("%s/%s %s/%s", group, gvr.Resource, ns, name)
}

// gvrString spells a resource as "<group>/<version>/<resource>", or
// "<version>/<resource>" for the core group, as in an API path.
func gvrString(gvr schema.GroupVersionResource) string {
	if gvr.Group == "" {
		return gvr.Version + "/" + gvr.Resource
	}
	return gvr.Group + "/" + gvr.Version + "/" + gvr.Resource
}
