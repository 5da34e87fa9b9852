package webhook

import (
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/registry"
)

// pluginAdmission is what a plugin adds to admission beyond its schema.
type pluginAdmission interface {
	// Default fills defaults that depend on the Task into the decoded
	// config, reporting whether it changed anything.
	Default(a *Admitter, task *v1alpha1.Task, cfg map[string]any) bool
	// Validate checks what the schema cannot; c.raw is the config as sent,
	// before defaulting, and may not pass the schema.
	Validate(a *Admitter, task *v1alpha1.Task, c *config) (field.ErrorList, []string)
	// Access lists the permissions the requesting user must hold.
	Access(a *Admitter, task *v1alpha1.Task, c *config) []AccessCheck
}

// plugins is the static table from plugin to its admission rules, one file
// each (plugin_<name>.go). registry.Must stops the binary at start when it
// does not list exactly v1alpha1.Plugins (docs/adding-a-plugin.md).
var plugins = registry.Must("admission", "webhook/plugins.go", map[v1alpha1.Plugin]pluginAdmission{
	v1alpha1.PluginCustomImage:    customImage{},
	v1alpha1.PluginTransformation: transformation{},
	v1alpha1.PluginRunSync:        runSync{},
})

// Plugins lists the plugins admission has rules for, sorted.
func Plugins() []v1alpha1.Plugin { return registry.Names(plugins) }

// AccessCheck is one permission the requesting user must hold, and the field
// that needs it.
type AccessCheck struct {
	Field      *field.Path
	Attributes authorizationv1.ResourceAttributes
	// Why is said to the user when the check fails.
	Why string
}
