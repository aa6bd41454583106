package runnel

import "errors"

// Config holds the string settings of the pipeline's configuration of this plugin, as the
// host passes them to init.
type Config struct {
	settings []Setting
}

// Setting is one name and value of a Config.
type Setting struct{ Name, Value string }

// NewConfig builds a configuration by hand, for a handler's own tests.
func NewConfig(settings ...Setting) *Config { return &Config{settings} }

// Get is the value of setting name, if it is set. When a name is repeated the last value wins,
// as a later line of a configuration file overrides an earlier one.
func (c *Config) Get(name string) (value string, ok bool) {
	for i := len(c.settings) - 1; i >= 0; i-- {
		if c.settings[i].Name == name {
			return c.settings[i].Value, true
		}
	}
	return "", false
}

// Require is the value of setting name, or an error for init to return that tells the user
// which setting to add.
func (c *Config) Require(name string) (string, error) {
	if value, ok := c.Get(name); ok {
		return value, nil
	}
	return "", errors.New("missing required setting `" + name + "`: add it to this plugin's config")
}

// Settings are every setting in the order the host passed them.
func (c *Config) Settings() []Setting { return c.settings }
