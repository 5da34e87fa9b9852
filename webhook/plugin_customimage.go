package webhook

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// Warning texts, as constants so tests and docs quote them exactly.
const (
	warnUntaggedImage = "spec.config.image %q has no tag: it runs whatever \"latest\" is when the Pod starts; pin a tag or a digest"
	warnLatestImage   = "spec.config.image %q uses the :latest tag: pin a tag or a digest so reruns are reproducible"
	warnClusterAdmin  = "spec.config.clusterRole is cluster-admin: the Pod gets full control of the cluster while it runs; prefer a narrower ClusterRole"
)

type customImage struct{}

func (customImage) Default(_ *Admitter, task *v1alpha1.Task, cfg map[string]any) bool {
	changed := false
	if _, has := cfg["namespace"]; !has && task.Namespace != "" {
		cfg["namespace"] = task.Namespace
		changed = true
	}
	// No serviceAccountName default: the ServiceAccount belongs to the run,
	// and the controller names it v1alpha1.ServiceAccountName(run's name,
	// run's UID) when the config names none, so every run has its own.
	return changed
}

func (customImage) Validate(a *Admitter, task *v1alpha1.Task, cfg *config) (field.ErrorList, []string) {
	// Quantities first: a bad one also makes the typed decode fail.
	errs := validateResources(cfg.value)
	c, err := decodeTyped[v1alpha1.CustomImageConfig](cfg)
	if err != nil {
		return errs, nil // the schema has reported the rest
	}
	var warnings []string
	if c.Namespace != "" && task.Namespace != "" && c.Namespace != task.Namespace {
		errs = append(errs, field.Invalid(configPath.Child("namespace"), c.Namespace,
			fmt.Sprintf("the Pod runs in the Task's namespace; remove this field or set it to %q", task.Namespace)))
	}
	if c.ServiceAccountName != "" {
		for _, msg := range validation.IsDNS1123Subdomain(c.ServiceAccountName) {
			errs = append(errs, field.Invalid(configPath.Child("serviceAccountName"), c.ServiceAccountName, msg))
		}
	}
	for i, e := range c.Env {
		if msgs := validation.IsEnvVarName(e.Name); len(msgs) > 0 {
			errs = append(errs, field.Invalid(configPath.Child("env").Index(i).Child("name"), e.Name, strings.Join(msgs, "; ")))
		}
	}
	if c.ClusterRole != "" {
		crPath := configPath.Child("clusterRole")
		for _, msg := range validation.IsDNS1123Subdomain(c.ClusterRole) {
			// ClusterRole names are path segments; a few built-in ones have colons.
			if !strings.Contains(c.ClusterRole, ":") {
				errs = append(errs, field.Invalid(crPath, c.ClusterRole, msg))
			}
		}
		if len(a.AllowedClusterRoles) > 0 && !slices.Contains(a.AllowedClusterRoles, c.ClusterRole) {
			errs = append(errs, &field.Error{Type: field.ErrorTypeNotSupported, Field: crPath.String(), BadValue: c.ClusterRole,
				Detail: "this installation allows only these ClusterRoles (chart value allowedClusterRoles): " + strings.Join(a.AllowedClusterRoles, ", ")})
		}
		if c.ClusterRole == "cluster-admin" {
			warnings = append(warnings, warnClusterAdmin)
		}
	}
	errs = append(errs, validatePodFields(c)...)
	if w := imageWarning(c.Image); c.Image != "" && w != "" {
		warnings = append(warnings, w)
	}
	return errs, warnings
}

// validatePodFields checks what the schema cannot: the Pod fields whose
// values depend on each other, and label and name syntax, so the API server
// never refuses the Pod for them at run time.
func validatePodFields(c *v1alpha1.CustomImageConfig) field.ErrorList {
	var errs field.ErrorList
	if sc := c.SecurityContext; sc != nil && sc.SeccompProfile != nil {
		p := configPath.Child("securityContext", "seccompProfile", "localhostProfile")
		sp := sc.SeccompProfile
		switch {
		case sp.Type == corev1.SeccompProfileTypeLocalhost && deref(sp.LocalhostProfile) == "":
			errs = append(errs, field.Required(p, "type Localhost needs the path of the profile on the node"))
		case sp.Type != corev1.SeccompProfileTypeLocalhost && sp.LocalhostProfile != nil:
			errs = append(errs, field.Forbidden(p, "only with type Localhost"))
		}
	}
	keys := slices.Sorted(maps.Keys(c.NodeSelector))
	for _, k := range keys {
		p := configPath.Child("nodeSelector").Key(k)
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, field.Invalid(p, k, "not a label key: "+msg))
		}
		for _, msg := range validation.IsValidLabelValue(c.NodeSelector[k]) {
			errs = append(errs, field.Invalid(p, c.NodeSelector[k], "not a label value: "+msg))
		}
	}
	for i, t := range c.Tolerations {
		errs = append(errs, validateToleration(&t, configPath.Child("tolerations").Index(i))...)
	}
	for i, s := range c.ImagePullSecrets {
		for _, msg := range validation.IsDNS1123Subdomain(s.Name) {
			errs = append(errs, field.Invalid(configPath.Child("imagePullSecrets").Index(i).Child("name"), s.Name, msg))
		}
	}
	return errs
}

// validateToleration holds a toleration to the API server's rules for one.
func validateToleration(t *corev1.Toleration, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if t.Key != "" {
		for _, msg := range validation.IsQualifiedName(t.Key) {
			errs = append(errs, field.Invalid(p.Child("key"), t.Key, msg))
		}
	}
	switch t.Operator {
	case corev1.TolerationOpExists:
		if t.Value != "" {
			errs = append(errs, field.Invalid(p.Child("value"), t.Value, "must be empty when operator is Exists"))
		}
	default: // Equal, the default
		if t.Key == "" {
			errs = append(errs, field.Invalid(p.Child("operator"), string(t.Operator),
				"must be Exists when key is empty (a toleration of every taint)"))
		}
		for _, msg := range validation.IsValidLabelValue(t.Value) {
			errs = append(errs, field.Invalid(p.Child("value"), t.Value, msg))
		}
	}
	if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
		errs = append(errs, field.Invalid(p.Child("effect"), string(t.Effect), "must be NoExecute when tolerationSeconds is set"))
	}
	return errs
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// validateResources checks every quantity under resources.requests/limits,
// and that no request exceeds its limit (the API server would refuse the Pod).
func validateResources(cfg map[string]any) field.ErrorList {
	res, _ := cfg["resources"].(map[string]any)
	if len(res) == 0 {
		return nil
	}
	var errs field.ErrorList
	parsed := map[string]map[string]resource.Quantity{}
	for _, kind := range []string{"requests", "limits"} {
		list, _ := res[kind].(map[string]any)
		parsed[kind] = map[string]resource.Quantity{}
		for name, raw := range list {
			p := configPath.Child("resources", kind).Key(name)
			q, err := resource.ParseQuantity(fmt.Sprint(raw))
			switch {
			case err != nil:
				errs = append(errs, field.Invalid(p, fmt.Sprint(raw), "not a quantity: use e.g. 100m or 0.5 for cpu, 64Mi or 1Gi for memory"))
			case q.Sign() < 0:
				errs = append(errs, field.Invalid(p, fmt.Sprint(raw), "must not be negative"))
			default:
				parsed[kind][name] = q
			}
		}
	}
	for name, req := range parsed["requests"] {
		if lim, ok := parsed["limits"][name]; ok && req.Cmp(lim) > 0 {
			errs = append(errs, field.Invalid(configPath.Child("resources", "requests").Key(name), req.String(),
				"must be less than or equal to the limit "+lim.String()))
		}
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Field < errs[j].Field })
	return errs
}

// imageWarning returns a warning for an image that is not pinned.
func imageWarning(image string) string {
	if strings.Contains(image, "@") {
		return ""
	}
	last := image[strings.LastIndex(image, "/")+1:]
	i := strings.LastIndex(last, ":")
	switch {
	case i < 0:
		return fmt.Sprintf(warnUntaggedImage, image)
	case last[i+1:] == "latest":
		return fmt.Sprintf(warnLatestImage, image)
	}
	return ""
}

// Access asks for what the run does as the requester: create the Pod in the
// run's namespace and, with clusterRole, create a ClusterRoleBinding to it,
// which the API server allows only to a user who may also bind that role.
func (customImage) Access(_ *Admitter, task *v1alpha1.Task, c *config) []AccessCheck {
	checks := []AccessCheck{{
		Field:      configPath,
		Attributes: authorizationv1.ResourceAttributes{Verb: "create", Version: "v1", Resource: "pods", Namespace: task.Namespace},
		Why:        "the run starts its image as a Pod you create (you cannot run through a Task what you could not run by hand)",
	}}
	role, _ := c.value["clusterRole"].(string)
	if role == "" {
		return checks
	}
	crPath := configPath.Child("clusterRole")
	return append(checks, AccessCheck{
		Field:      crPath,
		Attributes: authorizationv1.ResourceAttributes{Verb: "bind", Group: rbacGroup, Resource: "clusterroles", Name: role},
		Why:        fmt.Sprintf("binding ClusterRole %q needs the bind verb on it (you cannot hand out rights you may not grant yourself)", role),
	}, AccessCheck{
		Field:      crPath,
		Attributes: authorizationv1.ResourceAttributes{Verb: "create", Group: rbacGroup, Resource: "clusterrolebindings"},
		Why:        fmt.Sprintf("the run binds ClusterRole %q to its ServiceAccount with a ClusterRoleBinding you create", role),
	})
}
