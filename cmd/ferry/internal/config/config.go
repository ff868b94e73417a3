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
	l, err := LoadSources(path, environ)
	if err != nil {
		return server.Config{}, err
	}
	return l.Config, nil
}

// Loaded is a Config together with where each of its settings was last
// set (file and line, variable, or flag), so that Validate can say where
// to fix a value that is of the right type but out of range.
type Loaded struct {
	Config  server.Config
	origins origins
}

// origins maps a setting's yaml path to where it was last set.
type origins map[string]origin

type origin struct {
	source string // file name, variable name or flag ("--addr")
	line   int    // line in the file; 0 when not a file
}

// LoadSources loads as Load does, but returns the Config even when some
// settings were refused (those keep their earlier value), so that a caller
// can validate the rest and report every problem at once. The error
// (joined *Error values) is nil when every setting could be read.
func LoadSources(path string, environ []string) (*Loaded, error) {
	l := &Loaded{Config: server.Default(), origins: origins{}}
	var errs []error
	if path != "" {
		errs = append(errs, loadFile(&l.Config, path, l.origins)...)
	}
	errs = append(errs, loadEnv(&l.Config, environ, l.origins)...)
	return l, errors.Join(errs...)
}

// ApplyFlag sets a setting from a flag as the package's ApplyFlag does
// and remembers the flag's name (e.g. "--addr") as where it came from.
func (l *Loaded) ApplyFlag(flagName, path, value string) error {
	if err := ApplyFlag(&l.Config, path, value); err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Source = flagName
		}
		return err
	}
	l.origins[path] = origin{source: flagName}
	return nil
}

// Validate validates the Config and returns every problem as an *Error
// that names where the setting was written ("ferry.yaml:12: max_connections:
// -1: must not be negative"); settings left at their default carry no
// source. For a problem about a section ("tls"), the earliest setting of
// the section that was written somewhere is named.
func (l *Loaded) Validate() error {
	err := l.Config.Validate()
	if err == nil {
		return nil
	}
	var out []error
	for _, e := range flatten(err) {
		var fe *server.FieldError
		if !errors.As(e, &fe) {
			out = append(out, e)
			continue
		}
		o := l.origins.of(fe.Path)
		out = append(out, &Error{Source: o.source, Line: o.line, Path: fe.Path, Err: &problem{msg: fe.Msg, kind: ErrInvalidValue}})
	}
	return errors.Join(out...)
}

// of returns where path, or failing that the first-written setting under
// it, was set; the zero origin when it kept its default.
func (o origins) of(path string) origin {
	if at, ok := o[path]; ok {
		return at
	}
	var best origin
	found := false
	for p, at := range o {
		if !strings.HasPrefix(p, path+".") {
			continue
		}
		if !found || at.source < best.source || (at.source == best.source && at.line < best.line) {
			best, found = at, true
		}
	}
	return best
}

// flatten returns the errors joined in err (err itself when it joins
// none).
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// Check loads a configuration as Load does and validates it, for
// `ferry config check`: nil means a node would start with it (flags
// aside). Settings that cannot be read and settings out of range are
// reported together, each with its file and line or variable.
func Check(path string, environ []string) error {
	l, err := LoadSources(path, environ)
	if IsUnreadable(err) {
		return err
	}
	return errors.Join(err, l.Validate())
}

// IsUnreadable reports whether err, from LoadSources, says the file could
// not be read at all, after which validating the defaults would only add
// noise.
func IsUnreadable(err error) bool {
	for _, e := range flatten(err) {
		var ce *Error
		if e != nil && !errors.As(e, &ce) {
			return true
		}
	}
	return false
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

func loadFile(cfg *server.Config, path string, at origins) []error {
	data, err := os.ReadFile(path)
	if err != nil {
		return []error{fmt.Errorf("read config: %w", err)}
	}
	a := &applier{source: path, lines: true, origins: at}
	a.document(reflect.ValueOf(cfg).Elem(), data, "")
	return a.errs
}

func loadEnv(cfg *server.Config, environ []string, at origins) []error {
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
		a := &applier{source: name, origins: at}
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
