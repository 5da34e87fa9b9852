package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/astronetes/taskgate/actas"
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

// transformationRunner patches existing objects, once, as the requester.
//
// A transformation must never apply its operations twice (a JSON patch that
// appends to a list is not idempotent), so before the first patch it claims
// the run by writing an empty status.transformation, and records the counts
// in the same reconcile once done. A reconcile that finds the claim but no
// result knows an earlier one stopped mid-way and fails the run
// (ReasonInterrupted) instead of patching again.
//
// Memory does not grow with object size: it lists metadata only
// (PartialObjectMetadata), a page at a time, keeps a reference (namespace,
// name, resourceVersion) per matched object, at most maxObjects of them, and
// patches through the metadata client, whose answers are metadata too.
//
// Fair share: one requester patches one transformation at a time
// (requesterSlots). A requester's further transformations wait, Pending,
// without holding a worker, so one user's long transformations never occupy
// every worker and another requester's run starts at once.
type transformationRunner struct {
	*deps
	discovery  discovery.DiscoveryInterface
	maxObjects int
	slots      *requesterSlots
}

// target is one resource to patch and where to look for it.
type target struct {
	gvr        schema.GroupVersionResource
	namespaces []string // [""] for a cluster-scoped resource
}

// match is one object to patch, as listed.
type match struct {
	gvr                       schema.GroupVersionResource
	namespace, name, rvListed string
}

// operation is one patch request body.
type operation struct {
	patchType types.PatchType
	data      []byte
}

func (t *transformationRunner) run(ctx context.Context, run *v1alpha1.TaskRun, cp checkpointer) (time.Duration, error) {
	if run.Status.Transformation != nil {
		fail(run, ReasonInterrupted, "an earlier attempt stopped while patching and did not record which objects it patched; "+
			"the operations are not applied twice: check the objects and create a new Task to run again")
		return 0, nil
	}
	cfg, err := decodeConfig[v1alpha1.TransformationConfig](run)
	if err != nil {
		return 0, failPermanent(run, err)
	}
	who := requesterKey(run)
	holder, ok := t.slots.acquire(who, run.Namespace+"/"+run.Name)
	if !ok {
		setProgress(run, ReasonPending, fmt.Sprintf("waiting: %s's transformation %s is patching, and each requester patches one at a time", who, holder))
		return slotRetry, nil
	}
	defer t.slots.release(who)
	ops, selector, err := compile(cfg)
	if err != nil {
		return 0, failPermanent(run, err)
	}
	targets, err := t.resolve(run, cfg)
	if err != nil || isFinished(&run.Status) { // finished: a resource is not served, or its scope changed
		return 0, err
	}
	clients, err := t.clientsFor(run)
	if err != nil {
		return 0, failPermanent(run, err)
	}
	res := &v1alpha1.TransformationStatus{}
	matches, err := t.collect(ctx, clients.Metadata, targets, selector, cfg.Names, res)
	if err != nil {
		return 0, failPermanent(run, err)
	}
	if isFinished(&run.Status) {
		return 0, nil
	}
	if len(matches) > t.maxObjects {
		fail(run, ReasonTooManyObjects, fmt.Sprintf("the transformation matches more than %d objects, the most this installation patches in one Task "+
			"(--max-transformation-objects); nothing was patched: narrow it with labelSelector, names or namespaces, or split it", t.maxObjects))
		return 0, nil
	}

	run.Status.Transformation = &v1alpha1.TransformationStatus{}
	setProgress(run, ReasonPatching, fmt.Sprintf("patching %d objects", len(matches)))
	if err := cp.save(ctx); err != nil {
		return 0, fmt.Errorf("claim the run before patching: %w", err)
	}

	t.apply(ctx, clients.Metadata, matches, ops, res)
	run.Status.Transformation = res
	msg := fmt.Sprintf("matched %d objects: %d patched, %d unchanged, %d failed", res.Matched, res.Patched, res.Unchanged, res.Failed)
	log.FromContext(ctx).Info("transformation applied", "matched", res.Matched, "patched", res.Patched,
		"unchanged", res.Unchanged, "failed", res.Failed)
	// The outcome's Event (Succeeded or Failed, sent once the status is
	// written) carries msg: no separate Event for the patching.
	switch {
	case res.Matched == 0:
		succeed(run, ReasonNothingMatched, nothingMatchedMessage)
	case res.Failed > 0:
		fail(run, ReasonPatchFailed, fmt.Sprintf("%s; first failure: %s: %s%s", msg, res.Failures[0].Object, res.Failures[0].Message,
			actas.MastersHint(run.Spec.Requester)))
	default:
		succeed(run, ReasonPatched, msg)
	}
	// The result cannot be computed again, so try harder than usual to keep
	// it: a write lost here would turn into ReasonInterrupted.
	retriable := func(err error) bool { return !errors.Is(err, errStaleStatus) && !errors.Is(err, errTaskGone) }
	if err := retry.OnError(retry.DefaultBackoff, retriable, func() error { return cp.save(ctx) }); err != nil {
		return 0, fmt.Errorf("record transformation result: %w", err)
	}
	if res.Matched == 0 {
		// Besides the outcome's Normal Event: a selection that matches
		// nothing is most often a mistake, and a Warning is what gets seen.
		t.event(run, corev1.EventTypeWarning, EventNothingMatched, "Transform", "%s", nothingMatchedMessage)
	}
	return 0, nil
}

// nothingMatchedMessage is the message of ReasonNothingMatched.
const nothingMatchedMessage = "matched no objects: check resources, namespaces, names and labelSelector"

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
