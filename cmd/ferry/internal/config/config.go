package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/ferry-io/ferry/server"
)

// envPrefix starts the name of every setting's environment variable.
const envPrefix = "FERRY_"

// Load builds a Config from server.Default(), then the YAML file at path
// (skipped when path is ""), then the FERRY_* variables in environ (in the
// "NAME=value" form of os.Environ; the first of two same-named entries
// wins, as with os.Getenv). A variable set to "" counts as unset. A
// setting from a later source replaces the earlier value as a whole: a
// list is not appended to, and FERRY_NAMESPACES replaces every namespace
// of the file.
//
// Load does not validate the result: the caller applies its flags with
// ApplyFlag and then calls Validate. Every problem found in the file and
// the environment is reported (joined), each as an *Error (a file that
// cannot be read is reported as such, errors.Is fs.ErrNotExist and so on);
// the Config is then the zero value.
func Load(path string, environ []string) (server.Config, error) {
	cfg := server.Default()
	var errs []error
	if path != "" {
		errs = append(errs, loadFile(&cfg, path)...)
	}
	errs = append(errs, loadEnv(&cfg, environ)...)
	if len(errs) > 0 {
		return server.Config{}, errors.Join(errs...)
	}
	return cfg, nil
}

// Check loads a configuration as Load does and validates it, for
// `ferry config check`: nil means a node would start with it (flags
// aside).
func Check(path string, environ []string) error {
	cfg, err := Load(path, environ)
	if err != nil {
		return err
	}
	return cfg.Validate()
}

// ApplyFlag sets the setting at a yaml path (heartbeat.interval) from a
// flag's text, parsed as a variable's would be, except that "" is a value
// (it sets a string to empty) rather than "unset". cfg must not be nil;
// on error it is left unchanged. The error is an *Error without a source;
// the caller names the flag.
func ApplyFlag(cfg *server.Config, path string, value string) error {
	root := reflect.ValueOf(cfg).Elem()
	for _, l := range leavesOf(root.Type()) {
		if l.path == path {
			a := &applier{}
			a.setText(root.FieldByIndex(l.index), path, value)
			return errors.Join(a.errs...)
		}
	}
	return &Error{Path: path, Err: ErrUnknownSetting}
}

// UnknownEnv returns the FERRY_* variables of environ that name no
// setting, sorted, so that a caller can warn about a misspelt name (Load
// ignores them: other tools may use the prefix too).
func UnknownEnv(environ []string) []string {
	known := map[string]bool{}
	for _, l := range leavesOf(reflect.TypeFor[server.Config]()) {
		known[EnvName(l.path)] = true
	}
	var out []string
	for name := range envVars(environ) {
		if !known[name] {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func loadFile(cfg *server.Config, path string) []error {
	data, err := os.ReadFile(path)
	if err != nil {
		return []error{fmt.Errorf("read config: %w", err)}
	}
	a := &applier{source: path, lines: true}
	a.document(reflect.ValueOf(cfg).Elem(), data, "")
	return a.errs
}

func loadEnv(cfg *server.Config, environ []string) []error {
	vars := envVars(environ)
	if len(vars) == 0 {
		return nil
	}
	root := reflect.ValueOf(cfg).Elem()
	var errs []error
	for _, l := range leavesOf(root.Type()) {
		name := EnvName(l.path)
		s, ok := vars[name]
		if !ok || s == "" {
			continue
		}
		a := &applier{source: name}
		a.setText(root.FieldByIndex(l.index), l.path, s)
		errs = append(errs, a.errs...)
	}
	return errs
}

// envVars returns the FERRY_* entries of environ by name; the first of
// two same-named entries wins.
func envVars(environ []string) map[string]string {
	out := map[string]string{}
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, envPrefix) {
			continue
		}
		if _, seen := out[name]; !seen {
			out[name] = val
		}
	}
	return out
}
