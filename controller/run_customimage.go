package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/children"
)

// customImageRunner runs config.image as one Pod and follows it.
type customImageRunner struct {
	*deps
}

// watch watches the Pods and ServiceAccounts the runs created.
func (c *customImageRunner) watch(_ ctrl.Manager, b *builder.Builder) *builder.Builder {
	return b.Owns(&corev1.Pod{}).Owns(&corev1.ServiceAccount{})
}

func (c *customImageRunner) run(ctx context.Context, run *v1alpha1.TaskRun, cp checkpointer) (time.Duration, error) {
	cfg, err := decodeConfig[v1alpha1.CustomImageConfig](run)
	if err == nil && cfg.Namespace != "" && cfg.Namespace != run.Namespace {
		err = fmt.Errorf("%w: config.namespace %q: the Pod runs in the run's namespace %q", errInvalidConfig, cfg.Namespace, run.Namespace)
	}
	if err != nil {
		return 0, failPermanent(run, err)
	}
	st := run.Status.CustomImage
	if st == nil {
		st = &v1alpha1.CustomImageStatus{}
		run.Status.CustomImage = st
	}
	st.ServiceAccountName = cfg.ServiceAccountName
	if st.ServiceAccountName == "" {
		st.ServiceAccountName = v1alpha1.ServiceAccountName(run.Name, run.UID)
	}

	pod, err := c.start(ctx, run, cfg, st, cp)
	if err != nil {
		if err := failPermanent(run, err); err != nil {
			return c.notStarted(ctx, run, cfg, err)
		}
		return 0, nil
	}
	for {
		if pod == nil {
			fail(run, ReasonPodDeleted, fmt.Sprintf("pod %s was deleted before it finished; it is not recreated: create a new Task to run again", st.PodName))
			return 0, nil
		}
		st.PodName = pod.Name
		if !c.follow(run, pod, cfg) {
			break
		}
		if started, err := c.nextAttempt(ctx, run, cfg, pod, cp); err != nil || !started {
			return 0, err
		}
		// The same path as the first Pod: created as the requester, never
		// after the deadline.
		if pod, err = c.ensurePod(ctx, run, cfg, st, cp); err != nil {
			if err := failPermanent(run, err); err != nil {
				return c.notStarted(ctx, run, cfg, err)
			}
			return 0, nil
		}
	}
	if isFinished(&run.Status) || cfg.TimeoutSeconds == nil {
		return 0, nil
	}
	return c.enforceTimeout(ctx, run, pod, cfg)
}

// start creates what the Pod needs and the Pod, or returns the Pod that
// exists; nil if it existed once and is gone.
func (c *customImageRunner) start(ctx context.Context, run *v1alpha1.TaskRun, cfg *v1alpha1.CustomImageConfig,
	st *v1alpha1.CustomImageStatus, cp checkpointer) (*corev1.Pod, error) {
	if cfg.ClusterRole != "" || cfg.ServiceAccountName == "" {
		// On every reconcile, not only before the binding or the
		// ServiceAccount is created: someone who strips the finalizer of a
		// running run, or deletes it with --cascade=orphan, must not leave
		// either behind once it is deleted.
		if err := c.setFinalizer(ctx, run, true); err != nil {
			return nil, err
		}
	}
	if err := c.ensureServiceAccount(ctx, run, cfg, st, cp); err != nil {
		return nil, err
	}
	if cfg.ClusterRole != "" {
		if st.ClusterRoleBindingName == "" {
			if err := c.ensureBinding(ctx, run, cfg.ClusterRole, st.ServiceAccountName); err != nil {
				return nil, err
			}
			st.ClusterRoleBindingName = v1alpha1.ClusterRoleBindingName(run.Namespace, run.Name)
		}
	}
	return c.ensurePod(ctx, run, cfg, st, cp)
}

// ensureServiceAccount creates the run's own ServiceAccount unless the user
// named one: a named one is used as is, since the Pod is created as the
// requester, who could run a Pod with it by hand. It is created as the
// manager itself, under a name nobody could use before the run existed
// (v1alpha1.ServiceAccountName: part of the run's random UID), so no
// RoleBinding made in advance can name it; it carries no rights until
// something binds it, and it is deleted when the run ends (cleanup, under
// the run's finalizer, so also when the run is deleted with
// --cascade=orphan).
//
// The run's own one is the run's only if its UID is the one recorded in
// status.customImage.serviceAccountUID, which is written (a checkpoint)
// before anything is bound to it. One that someone else created first (a
// namespace editor squatting the name to get a token bound to an admin's
// clusterRole) fails the run with ReasonNameConflict; one that claims this
// Task as its controller but is not recorded (a reconcile that stopped
// before recording it, or someone who read the run's UID and raced) has
// nothing bound to it yet and is replaced; one that changed or vanished
// after it was recorded fails the run with ReasonServiceAccountReplaced.
func (c *customImageRunner) ensureServiceAccount(ctx context.Context, run *v1alpha1.TaskRun, cfg *v1alpha1.CustomImageConfig,
	st *v1alpha1.CustomImageStatus, cp checkpointer) error {
	name := st.ServiceAccountName
	if cfg.ServiceAccountName != "" {
		return nil
	}
	key := types.NamespacedName{Namespace: run.Namespace, Name: name}
	sa := &corev1.ServiceAccount{}
	err := c.client.Get(ctx, key, sa)
	switch {
	case err == nil && st.ServiceAccountUID == sa.UID:
		return nil
	case err == nil || (apierrors.IsNotFound(err) && st.ServiceAccountUID != ""):
		// Another UID in the cache, or the recorded one missing from it.
		done, err := c.claimServiceAccount(ctx, run, st, key)
		if err != nil || done {
			return err
		}
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("get service account %s: %w", key, err)
	}
	// Never recorded and not in the cache: created straight away; AlreadyExists
	// finds one the cache cannot hold (without the run label).
	for replaced := false; ; replaced = true {
		sa = &corev1.ServiceAccount{ObjectMeta: children.Meta(run, name)}
		sa.OwnerReferences = children.OwnerReference(run)
		err := c.client.Create(ctx, sa)
		if err == nil {
			break
		}
		if !apierrors.IsAlreadyExists(err) || replaced {
			return fmt.Errorf("create service account %s: %w", key, err)
		}
		done, err := c.claimServiceAccount(ctx, run, st, key)
		if err != nil || done {
			return err
		}
	}
	st.ServiceAccountUID = sa.UID
	if err := cp.save(ctx); err != nil {
		return fmt.Errorf("record service account %s: %w", key, err)
	}
	log.FromContext(ctx).Info("service account created", "serviceAccount", klog.KObj(sa), "uid", sa.UID)
	c.event(run, corev1.EventTypeNormal, EventServiceAccountCreated, "Create", "created service account %s", name)
	return nil
}

// claimServiceAccount judges the ServiceAccount of the run's default name
// when the cache does not show the recorded one (see ensureServiceAccount).
// Every verdict here deletes a ServiceAccount or fails the run, and the
// cache may lag behind this controller's own last steps (a replacement it
// made, a checkpoint it wrote), so it judges what the API server holds: the
// Task is read again, and one newer than the run being reconciled is
// retried rather than judged; then the ServiceAccount. done reports that the
// live one is the recorded one; one that claims the run but was never
// recorded is deleted, to be created again by the caller.
func (c *customImageRunner) claimServiceAccount(ctx context.Context, run *v1alpha1.TaskRun, st *v1alpha1.CustomImageStatus, key types.NamespacedName) (done bool, err error) {
	live := &v1alpha1.TaskRun{}
	if err := c.reader.Get(ctx, client.ObjectKeyFromObject(run), live); err != nil {
		return false, fmt.Errorf("get taskrun %s/%s: %w", run.Namespace, run.Name, err)
	}
	if live.ResourceVersion != run.ResourceVersion {
		return false, fmt.Errorf("taskrun %s/%s changed since it was read (resourceVersion %s, now %s): retrying on the newer one",
			run.Namespace, run.Name, run.ResourceVersion, live.ResourceVersion)
	}
	sa := &corev1.ServiceAccount{}
	err = c.reader.Get(ctx, key, sa)
	switch {
	case apierrors.IsNotFound(err) && st.ServiceAccountUID != "":
		return false, fmt.Errorf("%w: service account %s was deleted while the run was going", errServiceAccountReplaced, key)
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("get service account %s: %w", key, err)
	case st.ServiceAccountUID == sa.UID:
		return true, nil
	case st.ServiceAccountUID != "":
		return false, fmt.Errorf("%w: service account %s/%s was replaced while the run was going (UID %s; taskgate created %s)",
			errServiceAccountReplaced, sa.Namespace, sa.Name, sa.UID, st.ServiceAccountUID)
	case !metav1.IsControlledBy(sa, run):
		return false, fmt.Errorf("%w: service account %s/%s exists and was not created by this run; taskgate never adopts it "+
			"(whoever holds it would get the run's clusterRole): delete it or name a service account in config.serviceAccountName",
			errNameConflict, sa.Namespace, sa.Name)
	}
	err = c.client.Delete(ctx, sa, client.Preconditions{UID: &sa.UID})
	if client.IgnoreNotFound(err) != nil {
		return false, fmt.Errorf("delete unrecorded service account %s/%s: %w", sa.Namespace, sa.Name, err)
	}
	log.FromContext(ctx).Info("replaced a service account that names this run as its owner but that taskgate did not record creating",
		"serviceAccount", klog.KObj(sa), "uid", sa.UID)
	return false, nil
}

// ensureBinding binds clusterRole to the run's ServiceAccount, as the
// requester: the API server then demands of them what it demands of anyone
// (create clusterrolebindings, and bind on the role or every right in it).
// The caller has put the finalizer on first, so the binding can never
// outlive a run that is deleted between the two steps.
func (c *customImageRunner) ensureBinding(ctx context.Context, run *v1alpha1.TaskRun, clusterRole, serviceAccount string) error {
	clients, err := c.clientsFor(run)
	if err != nil {
		return err
	}
	crb := children.ClusterRoleBinding(run, clusterRole, serviceAccount)
	name := crb.Name
	err = clients.Client.Create(ctx, crb)
	if apierrors.IsAlreadyExists(err) {
		if err := c.reader.Get(ctx, client.ObjectKey{Name: name}, crb); err != nil {
			return fmt.Errorf("get cluster role binding %s: %w", name, err)
		}
		if !children.BoundFor(crb, run) {
			return fmt.Errorf("%w: cluster role binding %s exists and was not created by this run", errNameConflict, name)
		}
		return nil
	}
	if apierrors.IsForbidden(err) && c.actAs.Mode() == actas.ModeController {
		// RBAC lets the manager bind only roles it may bind itself: in
		// this mode the chart grants bind on allowedClusterRoles alone.
		return fmt.Errorf("%w: taskgate may not bind ClusterRole %s: %v; an administrator can add it to the chart value allowedClusterRoles",
			errBindForbidden, clusterRole, err)
	}
	if err != nil {
		return refused(err, ReasonForbidden, fmt.Sprintf("create cluster role binding %s (ClusterRole %s) as %s", name, clusterRole, actingAs(clients)))
	}
	log.FromContext(ctx).Info("cluster role binding created", "clusterRoleBinding", klog.KObj(crb), "clusterRole", clusterRole)
	c.event(run, corev1.EventTypeNormal, EventClusterRoleBindingCreated, "Create",
		"bound cluster role %s to service account %s with %s", clusterRole, serviceAccount, name)
	return nil
}

// cleanup removes the run's ClusterRoleBinding and the ServiceAccount
// taskgate created for it (by its recorded UID), if they are still there.
func (c *customImageRunner) cleanup(ctx context.Context, run *v1alpha1.TaskRun) error {
	if err := c.removeBinding(ctx, run); err != nil {
		return err
	}
	st := run.Status.CustomImage
	if st == nil || st.ServiceAccountUID == "" || st.ServiceAccountName == "" {
		return nil
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: run.Namespace, Name: st.ServiceAccountName}}
	uid := st.ServiceAccountUID
	err := c.client.Delete(ctx, sa, client.Preconditions{UID: &uid})
	switch {
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		return nil // gone, or not the one taskgate created
	case err != nil:
		return fmt.Errorf("delete service account %s/%s: %w", sa.Namespace, sa.Name, err)
	}
	log.FromContext(ctx).Info("service account removed", "serviceAccount", klog.KObj(sa))
	return nil
}

// removeBinding removes the run's ClusterRoleBinding, if it is still there.
func (c *customImageRunner) removeBinding(ctx context.Context, run *v1alpha1.TaskRun) error {
	name := v1alpha1.ClusterRoleBindingName(run.Namespace, run.Name)
	crb := &rbacv1.ClusterRoleBinding{}
	if err := c.reader.Get(ctx, client.ObjectKey{Name: name}, crb); apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("get cluster role binding %s: %w", name, err)
	}
	if !children.BoundFor(crb, run) {
		return nil // someone else's: never delete it
	}
	err := c.client.Delete(ctx, crb, client.Preconditions{UID: &crb.UID})
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete cluster role binding %s: %w", name, err)
	}
	log.FromContext(ctx).Info("cluster role binding removed", "clusterRoleBinding", klog.KObj(crb))
	c.event(run, corev1.EventTypeNormal, EventClusterRoleBindingRemoved, "Delete", "removed cluster role binding %s", name)
	return nil
}

// ensurePod returns the Pod of the run's current attempt
// (status.customImage.attempt), creating it the first time. It returns nil
// if the Pod existed once (status.customImage.podName names it) and is gone:
// a Pod is never recreated, since its command may not be safe to run twice.
//
// No Pod is ever adopted on its name, labels or owner reference: a Pod under
// the attempt's name is this run's only if its UID is the recorded podUID,
// or, when the controller stopped before recording it, if it carries the
// creationToken this run checkpointed before creating it in an earlier
// reconcile. Anything else (a namespace editor who pre-created the next
// attempt's Pod with an owner reference to the run) fails the run
// NameConflict, which removes its binding.
func (c *customImageRunner) ensurePod(ctx context.Context, run *v1alpha1.TaskRun, cfg *v1alpha1.CustomImageConfig,
	st *v1alpha1.CustomImageStatus, cp checkpointer) (*corev1.Pod, error) {
	key := types.NamespacedName{Namespace: run.Namespace, Name: v1alpha1.AttemptPodName(run.Name, st.Attempt)}
	pod := &corev1.Pod{}
	err := c.client.Get(ctx, key, pod)
	if apierrors.IsNotFound(err) && (st.PodName == key.Name || st.PodUID != "") {
		// The cache may not have seen the Pod yet: ask the API server.
		err = c.reader.Get(ctx, key, pod)
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
	}
	if err == nil {
		return c.ownPod(ctx, pod, run, st, false)
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("get pod %s: %w", key, err)
	}

	clients, err := c.clientsFor(run)
	if err != nil {
		return nil, err
	}
	if left, due := c.timeLeft(run, cfg); due && left <= 0 {
		// Never start a command after its deadline (the manager was
		// down, or creating the Pod failed until now).
		return nil, errDeadlinePassed
	}
	fresh := st.CreationToken == ""
	if fresh {
		st.CreationToken = string(uuid.NewUUID())
		if err := cp.save(ctx); err != nil {
			return nil, fmt.Errorf("record the creation token of pod %s: %w", key, err)
		}
	}
	pod = children.Pod(run, cfg, st.ServiceAccountName)
	pod.Name = key.Name
	pod.Annotations = map[string]string{v1alpha1.CreationTokenAnnotation: st.CreationToken}
	if left, due := c.timeLeft(run, cfg); due && st.Attempt > 0 {
		// A later attempt has only what is left of the run's timeout.
		secs := min(*cfg.TimeoutSeconds, int64((left+time.Second-1)/time.Second))
		pod.Spec.ActiveDeadlineSeconds = ptr.To(max(1, secs))
	}
	err = clients.Client.Create(ctx, pod)
	if apierrors.IsAlreadyExists(err) {
		if err := c.reader.Get(ctx, key, pod); err != nil {
			return nil, fmt.Errorf("get pod %s: %w", key, err)
		}
		return c.ownPod(ctx, pod, run, st, fresh)
	}
	if err != nil {
		return nil, refusedPod(err, fmt.Sprintf("create pod %s as %s", key.Name, actingAs(clients)))
	}
	st.PodUID = pod.UID
	log.FromContext(ctx).Info("pod created", "pod", klog.KObj(pod), "image", cfg.Image)
	c.event(run, corev1.EventTypeNormal, EventPodCreated, "Create", "created pod %s running %s", pod.Name, cfg.Image)
	return pod, nil
}

// ownPod returns pod if this run created it (see ensurePod), recording its
// UID, and errNameConflict otherwise. fresh says the creation token was
// written in this reconcile, so no Pod of this run can carry it yet. The
// verdict fails the run, and the cache may hold the run as it was before
// this controller's own last checkpoints, so a run that is not fresh is
// read again from the API server first, and one newer than the run being
// reconciled is retried rather than judged.
func (c *customImageRunner) ownPod(ctx context.Context, pod *corev1.Pod, run *v1alpha1.TaskRun, st *v1alpha1.CustomImageStatus, fresh bool) (*corev1.Pod, error) {
	switch {
	case st.PodUID != "" && pod.UID == st.PodUID:
		return pod, nil
	case st.PodUID == "" && !fresh && st.CreationToken != "" && metav1.IsControlledBy(pod, run) &&
		pod.Annotations[v1alpha1.CreationTokenAnnotation] == st.CreationToken:
		st.PodUID = pod.UID
		return pod, nil
	}
	if !fresh {
		live := &v1alpha1.TaskRun{}
		if err := c.reader.Get(ctx, client.ObjectKeyFromObject(run), live); err != nil {
			return nil, fmt.Errorf("get taskrun %s/%s: %w", run.Namespace, run.Name, err)
		}
		if live.ResourceVersion != run.ResourceVersion {
			return nil, fmt.Errorf("%w: taskrun %s/%s changed since it was read (resourceVersion %s, now %s)",
				errStaleStatus, run.Namespace, run.Name, run.ResourceVersion, live.ResourceVersion)
		}
	}
	log.FromContext(ctx).Info("pod not adopted: this run did not record creating it", "pod", klog.KObj(pod), "uid", pod.UID,
		"recordedUID", st.PodUID, "tokenMatches", st.CreationToken != "" && pod.Annotations[v1alpha1.CreationTokenAnnotation] == st.CreationToken,
		"controlledByRun", metav1.IsControlledBy(pod, run))
	return nil, fmt.Errorf("%w: pod %s exists and was not created by this run; taskgate never adopts a Pod on its name, "+
		"labels or owner reference: delete it and run the Task again", errNameConflict, pod.Name)
}

// follow sets the run's condition from its Pod's phase. It returns true,
// leaving the condition as it was, when the Pod's container exited non-zero
// and an attempt is left (config.retries): the caller starts the next one.
func (c *customImageRunner) follow(run *v1alpha1.TaskRun, pod *corev1.Pod, cfg *v1alpha1.CustomImageConfig) (retry bool) {
	st := run.Status.CustomImage
	term := terminated(pod)
	if term != nil {
		st.ExitCode = &term.ExitCode
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		recordAttempt(st, pod, term)
	}
	switch pod.Status.Phase {
	case corev1.PodSucceeded:
		succeed(run, ReasonCompleted, fmt.Sprintf("pod %s completed", pod.Name)+attemptSuffix(st, cfg))
	case corev1.PodFailed:
		switch {
		case pod.Status.Reason == "DeadlineExceeded":
			// The run's timeout covers every attempt: never retried.
			fail(run, ReasonTimeout, fmt.Sprintf("pod %s ran past its deadline of %ds", pod.Name, deref(pod.Spec.ActiveDeadlineSeconds)))
		case term != nil && term.ExitCode != 0 && st.Attempt < deref(cfg.Retries):
			return true
		case term != nil:
			fail(run, ReasonPodFailed, exitMessage(pod.Name, term)+attemptSuffix(st, cfg))
		default:
			fail(run, ReasonPodFailed, fmt.Sprintf("pod %s failed: %s %s", pod.Name, pod.Status.Reason, pod.Status.Message)+attemptSuffix(st, cfg))
		}
	case corev1.PodRunning:
		setProgress(run, ReasonRunning, fmt.Sprintf("pod %s is running", pod.Name))
	case corev1.PodUnknown:
		// The node stopped reporting; the Pod may still run there.
		setProgress(run, ReasonRunning, fmt.Sprintf("pod %s is in an unknown state: %s", pod.Name, pod.Status.Message))
	default:
		setProgress(run, ReasonPending, pendingMessage(pod))
	}
	return false
}

// terminated is the state of the run's container once it exited.
func terminated(pod *corev1.Pod) *corev1.ContainerStateTerminated {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == children.ContainerName && cs.State.Terminated != nil {
			return cs.State.Terminated
		}
	}
	return nil
}

// exitMessage says how the container ended: its exit code, the reason the
// kubelet gave (Error, OOMKilled, ...) and the message it left, if any.
func exitMessage(podName string, term *corev1.ContainerStateTerminated) string {
	msg := fmt.Sprintf("pod %s: container %s exited with code %d", podName, children.ContainerName, term.ExitCode)
	if term.Reason != "" {
		msg += fmt.Sprintf(" (%s)", term.Reason)
	}
	if term.Message != "" {
		msg += ": " + term.Message
	}
	return msg
}

// pendingMessage says why a Pod has not started, when the kubelet said so
// (ErrImagePull, ImagePullBackOff, ...): the most common reason a custom
// image Task hangs.
func pendingMessage(pod *corev1.Pod) string {
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" {
			return fmt.Sprintf("pod %s is pending: %s: %s", pod.Name, w.Reason, w.Message)
		}
	}
	return fmt.Sprintf("pod %s is pending", pod.Name)
}

// refusedPod turns the API server's refusal of the Pod into a permanent
// failure: ReasonForbidden when RBAC denied the requester (the
// authorizer's "cannot create resource" wording), ReasonPodRejected when
// admission refused the Pod itself (PodSecurity, a quota, a policy webhook,
// an invalid spec). Any other error is returned for a retry.
func refusedPod(err error, what string) error {
	switch {
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), " cannot "):
		return refused(err, ReasonForbidden, what)
	case apierrors.IsForbidden(err), apierrors.IsInvalid(err):
		return &refusal{reason: ReasonPodRejected, err: fmt.Errorf("the API server refused to %s: %w", what, err)}
	}
	return fmt.Errorf("%s: %w", what, err)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
