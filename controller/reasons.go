package controller

// Reasons of the run's Succeeded condition. While the condition is Unknown
// the reason says how far the run got (and, through taskPhase, whether the
// run is Pending or Running); once it is True or False it says how it ended.
const (
	// ReasonPending: the run was accepted and is waiting for its workload to start.
	ReasonPending = "Pending"
	// ReasonRunning: the workload (the Pod) is running.
	ReasonRunning = "Running"
	// ReasonPatching: a transformation claimed the run and is patching objects.
	ReasonPatching = "Patching"

	// ReasonCompleted: the custom-image Pod exited 0.
	ReasonCompleted = "Completed"
	// ReasonPatched: every matched object was patched or already as wanted.
	ReasonPatched = "Patched"
	// ReasonNothingMatched: a transformation's selection matched no object;
	// it succeeded, having nothing to do, and says so (a Warning Event too):
	// most often a typo in resources, namespaces, names or labelSelector.
	ReasonNothingMatched = "NothingMatched"
	// ReasonSynchronizationCreated: the Synchronization exists; the run's job is done.
	ReasonSynchronizationCreated = "SynchronizationCreated"
	// ReasonSynchronizationSucceeded: the Synchronization itself reports success.
	ReasonSynchronizationSucceeded = "SynchronizationSucceeded"

	// ReasonInvalidConfig: spec.config does not decode into the plugin's type.
	ReasonInvalidConfig = "InvalidConfig"
	// ReasonUnknownPlugin: spec.plugin names no runner of this controller.
	ReasonUnknownPlugin = "UnknownPlugin"
	// ReasonPodFailed: the custom-image container exited non-zero.
	ReasonPodFailed = "PodFailed"
	// ReasonTimeout: the custom-image Pod ran past config.timeoutSeconds.
	ReasonTimeout = "Timeout"
	// ReasonPodDeleted: the Pod vanished before it finished; it is not recreated.
	ReasonPodDeleted = "PodDeleted"
	// ReasonNameConflict: an object with the child's deterministic name exists
	// and belongs to someone else.
	ReasonNameConflict = "NameConflict"
	// ReasonServiceAccountReplaced: the ServiceAccount taskgate created for
	// the run (status.customImage.serviceAccountUID) was deleted or
	// replaced while the run was going; the binding is removed.
	ReasonServiceAccountReplaced = "ServiceAccountReplaced"
	// ReasonBindForbidden (--act-as=controller only): the API server refused
	// the manager the ClusterRoleBinding for config.clusterRole; the
	// installation does not allow that ClusterRole (chart value
	// allowedClusterRoles).
	ReasonBindForbidden = "BindForbidden"
	// ReasonForbidden: the API server refused a request sent as the
	// requester (the ClusterRoleBinding, the Synchronization, a
	// transformation's list, the Pod for lack of RBAC); the message is the
	// API server's own.
	ReasonForbidden = "Forbidden"
	// ReasonPodRejected: the API server refused the custom-image Pod for
	// another reason than RBAC (PodSecurity, a quota, a policy webhook, an
	// invalid spec); the message is the API server's own.
	ReasonPodRejected = "PodRejected"
	// ReasonNoRequester: the run has no spec.requester (it predates
	// requester recording, or the webhook was not installed), so in
	// --act-as=requester there is nobody to act as.
	ReasonNoRequester = "NoRequester"
	// ReasonScopeChanged: a transformation resource admission checked as
	// namespaced is cluster-scoped at run time; nothing was patched.
	ReasonScopeChanged = "ScopeChanged"
	// ReasonTooManyObjects: a transformation matched more objects than the
	// manager allows (--max-transformation-objects); nothing was patched.
	ReasonTooManyObjects = "TooManyObjects"
	// ReasonResourceNotFound: a transformation names a resource the API server
	// does not serve.
	ReasonResourceNotFound = "ResourceNotFound"
	// ReasonPatchFailed: at least one matched object could not be patched.
	ReasonPatchFailed = "PatchFailed"
	// ReasonInterrupted: a transformation was claimed by an earlier reconcile
	// that stopped before recording its result; patching again could apply the
	// operations twice, so the run fails instead.
	ReasonInterrupted = "Interrupted"
	// ReasonSynchronizationFailed: the Synchronization reports failure.
	ReasonSynchronizationFailed = "SynchronizationFailed"
	// ReasonSynchronizationNotServed: the cluster has no Synchronization API
	// (neither the Astronetes CRD nor the chart's minimal one).
	ReasonSynchronizationNotServed = "SynchronizationNotServed"
	// ReasonConcurrencyForbidden: the run's Task has concurrencyPolicy Forbid
	// and another run of it was admitted first and has not finished (two
	// TaskRuns admitted at the same instant: the later one fails, naming the
	// earlier); nothing was started.
	ReasonConcurrencyForbidden = "ConcurrencyForbidden"
	// ReasonNoSnapshot: the TaskRun has no spec.taskSpec, which admission
	// records (the webhook was not installed): there is nothing admitted to run.
	ReasonNoSnapshot = "NoSnapshot"
)

// Reasons of the Kubernetes Events the controller records on a run: one
// for each object it creates or removes while the run runs (a Pod, its
// ServiceAccount, a ClusterRoleBinding) and one for the outcome. An action
// whose outcome is known in the same reconcile (a transformation's patches, a
// Synchronization's creation) has no Event of its own: the outcome's Event
// says what was done, so each such Task costs the API server one Event.
const (
	EventPodCreated                = "PodCreated"
	EventPodDeleted                = "PodDeleted"
	EventPodFailed                 = "PodFailed" // an attempt failed and the next one starts (config.retries)
	EventServiceAccountCreated     = "ServiceAccountCreated"
	EventClusterRoleBindingCreated = "ClusterRoleBindingCreated"
	EventClusterRoleBindingRemoved = "ClusterRoleBindingRemoved"
	EventSucceeded                 = "Succeeded"
	EventNothingMatched            = "NothingMatched"
	EventFailed                    = "Failed"
)
