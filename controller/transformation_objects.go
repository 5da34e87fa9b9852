package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// resolve maps every listed resource through the API server's discovery,
// asked now rather than from a cache, so the scope it compares with what
// admission checked is the scope the patches will meet. It fails the run if
// a resource is not served (ReasonResourceNotFound) or was checked as
// namespaced and is cluster-scoped now (ReasonScopeChanged: patching it
// would reach objects in every namespace, which admission never checked),
// and returns an error only for what a retry may fix.
func (t *transformationRunner) resolve(run *v1alpha1.TaskRun, cfg *v1alpha1.TransformationConfig) ([]target, error) {
	namespaces := slices.Compact(slices.Sorted(slices.Values(cfg.Namespaces)))
	if len(namespaces) == 0 {
		namespaces = []string{run.Namespace}
	}
	var targets []target
	seen := map[schema.GroupVersionResource]bool{}
	served := map[schema.GroupVersion]*metav1.APIResourceList{}
	for _, r := range cfg.Resources {
		gvr := schema.GroupVersionResource{Group: r.Group, Version: r.Version, Resource: r.Resource}
		list, ok := served[gvr.GroupVersion()]
		if !ok {
			var err error
			list, err = t.discovery.ServerResourcesForGroupVersion(gvr.GroupVersion().String())
			if apierrors.IsNotFound(err) {
				list, err = &metav1.APIResourceList{}, nil
			}
			if err != nil {
				return nil, fmt.Errorf("discover resources of %s: %w", gvr.GroupVersion(), err)
			}
			served[gvr.GroupVersion()] = list
		}
		res := findResource(list, gvr.Resource)
		if res == nil {
			msg := fmt.Sprintf("resource %q is not served by the API server", r.String())
			if alt := findAlias(list, gvr.Resource); alt != "" {
				msg += fmt.Sprintf("; did you mean %q?", resourceName(gvr.GroupVersion().WithResource(alt)))
			}
			fail(run, ReasonResourceNotFound, msg)
			return nil, nil
		}
		if !res.Namespaced && r.Scope == v1alpha1.ScopeNamespaced {
			fail(run, ReasonScopeChanged, fmt.Sprintf("resource %q was checked at admission as namespaced, in the listed namespaces only, "+
				"but is cluster-scoped now; nothing was patched: create the run again to have it checked cluster-wide", r.String()))
			return nil, nil
		}
		if seen[gvr] {
			continue
		}
		seen[gvr] = true
		tg := target{gvr: gvr, namespaces: namespaces}
		if !res.Namespaced {
			tg.namespaces = []string{""}
		}
		targets = append(targets, tg)
	}
	return targets, nil
}

// findResource is the served resource named exactly name (not a
// subresource, a singular or a short name: exactly what admission checked).
func findResource(list *metav1.APIResourceList, name string) *metav1.APIResource {
	if strings.Contains(name, "/") {
		return nil // a subresource has no objects to list
	}
	for i := range list.APIResources {
		if list.APIResources[i].Name == name {
			return &list.APIResources[i]
		}
	}
	return nil
}

// findAlias is the resource whose singular or short name is name, for a
// hint.
func findAlias(list *metav1.APIResourceList, name string) string {
	for _, r := range list.APIResources {
		if r.SingularName == name || slices.Contains(r.ShortNames, name) {
			return r.Name
		}
	}
	return ""
}

// collect lists the objects of every target, metadata only and a page at a
// time, and returns a reference to each that matches: one more than
// maxObjects at most, so the caller can tell the bound was passed without
// holding everything. A list the API server refuses the requester fails the
// Task (ReasonForbidden, nothing patched); any other list failure is
// counted in res, as before any patch.
func (t *transformationRunner) collect(ctx context.Context, md metadata.Interface, targets []target, selector labels.Selector,
	names []string, res *v1alpha1.TransformationStatus) ([]match, error) {
	var out []match
	for _, tg := range targets {
		for _, ns := range tg.namespaces {
			opts := metav1.ListOptions{LabelSelector: selector.String(), Limit: listPageSize}
			for {
				page, err := md.Resource(tg.gvr).Namespace(ns).List(ctx, opts)
				if apierrors.IsForbidden(err) {
					return nil, refused(err, ReasonForbidden, "list "+objectRef(tg.gvr, ns, "*"))
				}
				if err != nil {
					res.Failed++
					addFailure(res, objectRef(tg.gvr, ns, "*"), fmt.Sprintf("list: %v", err))
					break
				}
				for _, obj := range page.Items {
					if len(names) > 0 && !slices.Contains(names, obj.Name) {
						continue
					}
					out = append(out, match{gvr: tg.gvr, namespace: obj.Namespace, name: obj.Name, rvListed: obj.ResourceVersion})
					if len(out) > t.maxObjects {
						return out, nil
					}
				}
				if opts.Continue = page.Continue; opts.Continue == "" {
					break
				}
			}
		}
	}
	return out, nil
}

// apply patches every match, counting the outcomes in res. Failures are
// counted, never returned: the run is claimed, so this runs once.
func (t *transformationRunner) apply(ctx context.Context, md metadata.Interface, matches []match, ops []operation, res *v1alpha1.TransformationStatus) {
	for _, m := range matches {
		res.Matched++
		moved, err := patch(ctx, md, m, ops)
		switch {
		case err != nil:
			res.Failed++
			addFailure(res, objectRef(m.gvr, m.namespace, m.name), err.Error())
			log.FromContext(ctx).Info("patch failed", "resource", resourceName(m.gvr),
				"object", objectRef(m.gvr, m.namespace, m.name), "error", err.Error())
		case moved:
			res.Patched++
		default:
			res.Unchanged++
		}
	}
}

// patch applies ops in order to the object and reports whether its
// resourceVersion moved, that is whether the operations changed anything.
// The API server applies each patch to the whole object and answers with
// its metadata only.
func patch(ctx context.Context, md metadata.Interface, m match, ops []operation) (bool, error) {
	c := md.Resource(m.gvr).Namespace(m.namespace)
	rv := m.rvListed
	for i, op := range ops {
		out, err := c.Patch(ctx, m.name, op.patchType, op.data, metav1.PatchOptions{FieldManager: fieldManager})
		if err != nil {
			return false, fmt.Errorf("operations[%d]: %w", i, err)
		}
		rv = out.ResourceVersion
	}
	return rv != m.rvListed, nil
}

// addFailure records a failed object while there is room; res.Failed counts
// them all.
func addFailure(res *v1alpha1.TransformationStatus, object, message string) {
	if len(res.Failures) < maxFailures {
		res.Failures = append(res.Failures, v1alpha1.ObjectFailure{Object: object, Message: message})
	}
}

// resourceName spells gvr as the run's resources are spelled in messages
// (v1alpha1.GroupVersionResource.String).
func resourceName(gvr schema.GroupVersionResource) string {
	return v1alpha1.GroupVersionResource{Group: gvr.Group, Version: gvr.Version, Resource: gvr.Resource}.String()
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
