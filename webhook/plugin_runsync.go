package webhook

import (
	"fmt"

	authorizationv1 "k8s.io/api/authorization/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/schemas"
)

type runSync struct{}

var (
	templatePath        = configPath.Child("template")
	templateMetaPath    = templatePath.Child("metadata")
	templateLabelsPath  = templateMetaPath.Child("labels")
	templateAnnotsPath  = templateMetaPath.Child("annotations")
	templateSpecPath    = templatePath.Child("spec")
	templatePluginPath  = templateSpecPath.Child("plugin")
	templateSpecCfgPath = templateSpecPath.Child("config")
)

// Default fills the synchronization plugin's static defaults, if its schema has any.
func (runSync) Default(a *Admitter, _ *v1alpha1.Task, cfg map[string]any) bool {
	if !a.Schemas.SyncPluginDefaults() {
		return false // nothing to fill
	}
	spec, syncConfig := syncSpec(cfg)
	plugin, _ := spec["plugin"].(string)
	sc, ok := a.Schemas.SyncPlugin(plugin)
	return ok && syncConfig != nil && sc.ApplyDefaults(syncConfig)
}

func (runSync) Validate(a *Admitter, _ *v1alpha1.Task, cfg *config) (field.ErrorList, []string) {
	c, err := decodeTyped[v1alpha1.RunSynchronizationConfig](cfg)
	if err != nil {
		return nil, nil // a type the schema has already reported
	}
	errs := metav1validation.ValidateLabels(c.Template.Metadata.Labels, templateLabelsPath)
	errs = append(errs, apivalidation.ValidateAnnotations(c.Template.Metadata.Annotations, templateAnnotsPath)...)

	plugin := c.Template.Spec.Plugin
	sc, ok := a.Schemas.SyncPlugin(plugin)
	if !ok {
		errs = append(errs, &field.Error{Type: field.ErrorTypeNotSupported, Field: templatePluginPath.String(),
			BadValue: plugin, Detail: schemas.Hint(plugin, a.Schemas.SyncPluginNames())})
		return errs, nil
	}
	_, syncConfig := syncSpec(cfg.value)
	if syncConfig == nil {
		errs = append(errs, field.Required(templateSpecCfgPath, fmt.Sprintf("the %s plugin's configuration", plugin)))
		return errs, nil
	}
	errs = append(errs, sc.Validate(syncConfig, templateSpecCfgPath)...)
	return errs, nil
}

func (runSync) Access(_ *Admitter, task *v1alpha1.Task, _ *config) []AccessCheck {
	return []AccessCheck{{
		Field: templatePath,
		Attributes: authorizationv1.ResourceAttributes{
			Verb: "create", Group: v1alpha1.GroupVersion.Group, Version: v1alpha1.GroupVersion.Version,
			Resource: "synchronizations", Namespace: task.Namespace,
		},
		Why: "the Task creates a Synchronization on your behalf",
	}}
}

// syncSpec returns template.spec and template.spec.config of a decoded config.
func syncSpec(cfg map[string]any) (spec, config map[string]any) {
	return templateSpec(cfg["template"])
}

// templateSpec returns spec and spec.config of a decoded template.
func templateSpec(template any) (spec, config map[string]any) {
	tmpl, _ := template.(map[string]any)
	spec, _ = tmpl["spec"].(map[string]any)
	config, _ = spec["config"].(map[string]any)
	return spec, config
}
