// Package children builds the objects a TaskRun creates, in one place, so
// that the controller creates exactly what admission's server-side dry run
// (the preflight) showed the API server.
package children

import (
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// ContainerName is the name of the one container of a custom-image Pod.
const ContainerName = "task"

// TaskNamespaceLabel on a ClusterRoleBinding names the namespace of the
// TaskRun that created it; with v1alpha1.TaskRunLabel and
// v1alpha1.TaskRunUIDLabel it identifies the run, since cluster-scoped
// objects cannot carry an owner reference to a namespaced one.
const TaskNamespaceLabel = "automation.astronetes.io/task-namespace"

// Meta is the metadata every namespaced child of a run starts from: its
// name, the run's namespace and the labels naming the run and its Task.
func Meta(run *v1alpha1.TaskRun, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:      name,
		Namespace: run.Namespace,
		Labels:    Labels(run),
	}
}

// Labels name the TaskRun (v1alpha1.TaskRunLabel) and, unless it is a
// one-off run, its Task (v1alpha1.TaskLabel).
func Labels(run *v1alpha1.TaskRun) map[string]string {
	l := map[string]string{v1alpha1.TaskRunLabel: v1alpha1.TaskLabelValue(run.Name)}
	if t := run.TaskName(); t != "" {
		l[v1alpha1.TaskLabel] = v1alpha1.TaskLabelValue(t)
	}
	return l
}

// OwnerReference makes run the controller of a namespaced child. It does not
// set blockOwnerDeletion: a child created as the requester would otherwise
// need `update taskruns/finalizers` where the
// OwnerReferencesPermissionEnforcement admission plugin runs, and the garbage
// collector removes children without it. Empty before the run has a UID (a
// preflight at admission).
func OwnerReference(run *v1alpha1.TaskRun) []metav1.OwnerReference {
	if run.UID == "" {
		return nil
	}
	return []metav1.OwnerReference{{
		APIVersion: v1alpha1.GroupVersion.String(),
		Kind:       "TaskRun",
		Name:       run.Name,
		UID:        run.UID,
		Controller: ptr.To(true),
	}}
}

// Pod is a custom-image run's Pod: one container, never restarted, so the
// run executes the command exactly once per attempt.
func Pod(task *v1alpha1.TaskRun, cfg *v1alpha1.CustomImageConfig, serviceAccount string) *corev1.Pod {
	container := corev1.Container{
		Name:            ContainerName,
		Image:           cfg.Image,
		Command:         cfg.Command,
		Args:            cfg.Args,
		Env:             cfg.Env,
		SecurityContext: SecurityContext(cfg.SecurityContext),
		// The log tail reaches the run's message when a failing container
		// wrote no termination message.
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	if cfg.Resources != nil {
		container.Resources = *cfg.Resources
	}
	om := Meta(task, v1alpha1.PodName(task.Name))
	om.OwnerReferences = OwnerReference(task)
	return &corev1.Pod{
		ObjectMeta: om,
		Spec: corev1.PodSpec{
			RestartPolicy:                corev1.RestartPolicyNever,
			ServiceAccountName:           serviceAccount,
			AutomountServiceAccountToken: cfg.AutomountServiceAccountToken,
			ActiveDeadlineSeconds:        cfg.TimeoutSeconds,
			NodeSelector:                 cfg.NodeSelector,
			Tolerations:                  cfg.Tolerations,
			ImagePullSecrets:             cfg.ImagePullSecrets,
			Containers:                   []corev1.Container{container},
		},
	}
}

// SecurityContext is the container's securityContext: the config's fields
// over defaults that PodSecurity restricted asks for and that no ordinary
// image needs relaxed (no privilege escalation, no capabilities, the
// runtime's seccomp profile). It sets nothing about the user: whether the
// image runs as non-root only its author knows, so a Task in a restricted
// namespace must say runAsNonRoot itself.
func SecurityContext(sc *v1alpha1.CustomImageSecurityContext) *corev1.SecurityContext {
	out := &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if sc == nil {
		return out
	}
	out.RunAsUser = sc.RunAsUser
	out.RunAsGroup = sc.RunAsGroup
	out.RunAsNonRoot = sc.RunAsNonRoot
	out.ReadOnlyRootFilesystem = sc.ReadOnlyRootFilesystem
	// privileged and allowPrivilegeEscalation are admitted only as false,
	// which the defaults already are; they and any capability but
	// NET_BIND_SERVICE are ignored, so that a Task that bypassed the
	// webhook is still not privileged.
	if sc.SeccompProfile != nil {
		out.SeccompProfile = sc.SeccompProfile
	}
	if sc.Capabilities != nil {
		for _, c := range sc.Capabilities.Add {
			if c == NetBindService {
				out.Capabilities.Add = append(out.Capabilities.Add, c)
			}
		}
	}
	return out
}

// NetBindService is the one capability PodSecurity restricted lets a
// container add.
const NetBindService corev1.Capability = "NET_BIND_SERVICE"

// ClusterRoleBinding binds a custom-image run's clusterRole to its
// ServiceAccount, labelled with the run's name, namespace and UID.
func ClusterRoleBinding(task *v1alpha1.TaskRun, clusterRole, serviceAccount string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{
			Name:   v1alpha1.ClusterRoleBindingName(task.Namespace, task.Name),
			Labels: BindingLabels(task),
		},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects: []rbacv1.Subject{{
			Kind: rbacv1.ServiceAccountKind, Namespace: task.Namespace, Name: serviceAccount,
		}},
	}
}

// BindingLabels identify the run a cluster-scoped child belongs to.
func BindingLabels(run *v1alpha1.TaskRun) map[string]string {
	l := Labels(run)
	l[TaskNamespaceLabel] = run.Namespace
	if run.UID != "" {
		l[v1alpha1.TaskRunUIDLabel] = string(run.UID)
	}
	return l
}

// BoundFor reports whether crb was created for run: by the run's UID, so a
// later run of the same name never inherits an earlier one's binding.
func BoundFor(crb *rbacv1.ClusterRoleBinding, run *v1alpha1.TaskRun) bool {
	return run.UID != "" && crb.Labels[v1alpha1.TaskRunUIDLabel] == string(run.UID) &&
		crb.Labels[TaskNamespaceLabel] == run.Namespace
}
