package config

import (
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ferry-io/ferry/server"
)

// Field describes one setting of server.Config.
type Field struct {
	// Path is the yaml path, e.g. "heartbeat.interval".
	Path string
	// Env is the environment variable, e.g. "FERRY_HEARTBEAT_INTERVAL".
	Env string
	// Type is the Go type, e.g. "time.Duration" or "[]string".
	Type string
	// Default is the value in server.Default(), written the way a file or
	// variable would write it ("25s", "1048576", "a,b"); "" when empty.
	Default string
}

// Fields lists every setting of server.Config in declaration order: each
// leaf of the struct (nested structs are walked, maps and lists are one
// setting each).
func Fields() []Field {
	def := reflect.ValueOf(server.Default())
	leaves := leavesOf(def.Type())
	out := make([]Field, 0, len(leaves))
	for _, l := range leaves {
		out = append(out, Field{
			Path:    l.path,
			Env:     EnvName(l.path),
			Type:    l.typ.String(),
			Default: formatValue(def.FieldByIndex(l.index)),
		})
	}
	return out
}

// EnvName returns the environment variable of the setting at a yaml path:
// FERRY_ followed by the path upper-cased with "_" for ".".
func EnvName(path string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// leaf is one settable field of a struct type.
type leaf struct {
	path  string
	index []int
	typ   reflect.Type
}

// leavesOf walks a struct type and returns its settings.
func leavesOf(t reflect.Type) []leaf {
	var out []leaf
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			name, inline, ok := yamlName(sf)
			if !ok {
				continue
			}
			idx := append(append([]int(nil), index...), i)
			if inline && sf.Type.Kind() == reflect.Struct {
				walk(sf.Type, prefix, idx)
				continue
			}
			path := joinPath(prefix, name)
			if sf.Type.Kind() == reflect.Struct {
				walk(sf.Type, path, idx)
				continue
			}
			out = append(out, leaf{path: path, index: idx, typ: sf.Type})
		}
	}
	walk(t, "", nil)
	return out
}

// structFields maps the yaml keys of a struct type to field indexes (the
// fields of inline structs included).
func structFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			name, inline, ok := yamlName(sf)
			if !ok {
				continue
			}
			idx := append(append([]int(nil), index...), i)
			if inline && sf.Type.Kind() == reflect.Struct {
				walk(sf.Type, idx)
				continue
			}
			out[name] = idx
		}
	}
	walk(t, nil)
	return out
}

// yamlName reads a field's yaml key the way go.yaml.in/yaml/v3 does: the
// tag's name, or the lower-cased field name without one; "-" and
// unexported fields are skipped.
func yamlName(sf reflect.StructField) (name string, inline, ok bool) {
	if !sf.IsExported() {
		return "", false, false
	}
	tag := sf.Tag.Get("yaml")
	name, opts, _ := strings.Cut(tag, ",")
	if name == "-" {
		return "", false, false
	}
	for _, o := range strings.Split(opts, ",") {
		if o == "inline" {
			inline = true
		}
	}
	if name == "" {
		name = strings.ToLower(sf.Name)
	}
	return name, inline, true
}

func joinPath(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

var durationType = reflect.TypeFor[time.Duration]()

// parseInto sets v, a scalar or a list of strings, from text. v is left as
// it was on error.
func parseInto(v reflect.Value, s string) error {
	t := v.Type()
	switch k := t.Kind(); {
	case t == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return invalidf("%q is not a duration (write it like 25s or 1m30s)", s)
		}
		v.SetInt(int64(d))
	case k == reflect.String:
		v.SetString(s)
	case k == reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return invalidf("%q is not a boolean (true or false)", s)
		}
		v.SetBool(b)
	case k >= reflect.Int && k <= reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, t.Bits())
		if err != nil {
			if isRange(err) {
				return invalidf("%q is out of range", s)
			}
			return invalidf("%q is not an integer", s)
		}
		v.SetInt(n)
	case k >= reflect.Uint && k <= reflect.Uint64:
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, t.Bits())
		if err != nil {
			if isRange(err) {
				return invalidf("%q is out of range", s)
			}
			return invalidf("%q is not a non-negative integer", s)
		}
		v.SetUint(n)
	case k == reflect.Float32 || k == reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), t.Bits())
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return invalidf("%q is not a number", s)
		}
		v.SetFloat(f)
	case k == reflect.Slice && t.Elem().Kind() == reflect.String:
		v.Set(stringList(t, strings.Split(s, ",")))
	default:
		return invalidf("a %s cannot be set from text", t)
	}
	return nil
}

// stringList builds a list of type t from items, trimmed, without empty
// ones.
func stringList(t reflect.Type, items []string) reflect.Value {
	out := reflect.MakeSlice(t, 0, len(items))
	for _, it := range items {
		it = strings.TrimSpace(it)
		if it == "" {
			continue
		}
		e := reflect.New(t.Elem()).Elem()
		e.SetString(it)
		out = reflect.Append(out, e)
	}
	return out
}

func isRange(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// formatValue writes v the way parseInto reads it back.
func formatValue(v reflect.Value) string {
	t := v.Type()
	switch k := t.Kind(); {
	case t == durationType:
		return formatDuration(time.Duration(v.Int()))
	case k == reflect.String:
		return v.String()
	case k == reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case k >= reflect.Int && k <= reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case k >= reflect.Uint && k <= reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10)
	case k == reflect.Float32 || k == reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'f', -1, t.Bits())
	case k == reflect.Slice && t.Elem().Kind() == reflect.String:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = v.Index(i).String()
		}
		return strings.Join(parts, ",")
	case k == reflect.Map:
		if v.Len() == 0 {
			return ""
		}
		var n yaml.Node
		if err := n.Encode(v.Interface()); err != nil {
			return ""
		}
		n.Style = yaml.FlowStyle
		b, err := yaml.Marshal(&n)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	return ""
}

// formatDuration writes d without the trailing zero units of
// time.Duration.String: 2m rather than 2m0s, 24h rather than 24h0m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
