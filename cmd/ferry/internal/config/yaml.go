package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// applier applies values from one source and collects what is wrong with
// them, so that one run reports every bad setting of a source.
type applier struct {
	source string // file name, variable name, or "" for a flag
	lines  bool   // whether YAML line numbers mean something to the reader
	errs   []error
	// origins, when not nil, records where each setting applied without
	// error was written, so that Validate's problems can name it too.
	origins origins
}

// set records that the setting at path was set from line of a.source.
func (a *applier) set(line int, path string) {
	if a.origins == nil {
		return
	}
	if !a.lines {
		line = 0
	}
	a.origins[path] = origin{source: a.source, line: line}
}

func (a *applier) fail(line int, path string, err error) {
	if !a.lines {
		line = 0
	}
	a.errs = append(a.errs, &Error{Source: a.source, Line: line, Path: path, Err: err})
}

// setText sets the setting v at path from the text of a variable or flag:
// a map from a YAML (or JSON) document, anything else through parseInto.
// v is left as it was when anything is wrong.
func (a *applier) setText(v reflect.Value, path, s string) {
	if v.Kind() != reflect.Map {
		if err := parseInto(v, s); err != nil {
			a.fail(0, path, err)
		} else {
			a.set(0, path)
		}
		return
	}
	before := len(a.errs)
	tmp := reflect.New(v.Type()).Elem()
	tmp.Set(v)
	a.document(tmp, []byte(s), path)
	if len(a.errs) == before {
		v.Set(tmp)
		a.set(0, path)
	}
}

// document parses data as one YAML document and applies it to v, the
// setting at path ("" for the whole Config).
func (a *applier) document(v reflect.Value, data []byte, path string) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) { // an empty document sets nothing
			a.fail(0, path, err)
		}
		return
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err == nil {
			a.fail(extra.Line, path, invalidf("more than one YAML document"))
		} else {
			a.fail(0, path, err)
		}
		return
	}
	if len(doc.Content) == 0 {
		return
	}
	a.node(v, doc.Content[0], path)
}

// node applies the YAML node n to v, the setting at path. A null value
// (a key with nothing after it, or ~) leaves the setting as it was.
func (a *applier) node(v reflect.Value, n *yaml.Node, path string) {
	n = deref(n)
	if isNull(n) {
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		a.mapping(v, n, path)
	case reflect.Map:
		a.mapOf(v, n, path)
	case reflect.Slice:
		a.list(v, n, path)
	default:
		if n.Kind != yaml.ScalarNode {
			a.fail(n.Line, path, invalidf("want a single value, got a %s", kindName(n)))
			return
		}
		if err := parseInto(v, n.Value); err != nil {
			a.fail(n.Line, path, err)
		} else {
			a.set(n.Line, path)
		}
	}
}

// mapping applies a YAML mapping to the struct v. Merge keys (<<) are
// applied first, so the mapping's own keys override what they bring.
func (a *applier) mapping(v reflect.Value, n *yaml.Node, path string) {
	if n.Kind != yaml.MappingNode {
		a.fail(n.Line, path, invalidf("want a mapping of settings, got a %s", kindName(n)))
		return
	}
	fields := structFields(v.Type())
	a.eachPair(n, path, func(merged *yaml.Node) {
		a.mapping(v, merged, path)
	}, func(key string, k, val *yaml.Node) {
		full := joinPath(path, key)
		idx, ok := fields[key]
		if !ok {
			a.fail(k.Line, full, ErrUnknownSetting)
			return
		}
		a.node(v.FieldByIndex(idx), val, full)
	})
}

// mapOf replaces the map v by a YAML mapping of names to values.
func (a *applier) mapOf(v reflect.Value, n *yaml.Node, path string) {
	t := v.Type()
	if n.Kind != yaml.MappingNode {
		a.fail(n.Line, path, invalidf("want a mapping of names, got a %s", kindName(n)))
		return
	}
	if t.Key().Kind() != reflect.String {
		a.fail(n.Line, path, invalidf("a %s cannot be set from YAML", t))
		return
	}
	m := reflect.MakeMap(t)
	var add func(n *yaml.Node)
	add = func(n *yaml.Node) {
		a.eachPair(n, path, func(merged *yaml.Node) {
			if merged.Kind != yaml.MappingNode {
				a.fail(merged.Line, path, invalidf("<< wants a mapping, got a %s", kindName(merged)))
				return
			}
			add(merged)
		}, func(key string, _, val *yaml.Node) {
			elem := reflect.New(t.Elem()).Elem()
			a.node(elem, val, joinPath(path, key))
			m.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), elem)
		})
	}
	add(n)
	v.Set(m)
	a.set(n.Line, path)
}

// list sets a list of strings from a YAML sequence of values or from one
// comma-separated value.
func (a *applier) list(v reflect.Value, n *yaml.Node, path string) {
	t := v.Type()
	if t.Elem().Kind() != reflect.String {
		a.fail(n.Line, path, invalidf("a %s cannot be set from YAML", t))
		return
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if err := parseInto(v, n.Value); err != nil {
			a.fail(n.Line, path, err)
		} else {
			a.set(n.Line, path)
		}
	case yaml.SequenceNode:
		items := make([]string, 0, len(n.Content))
		ok := true
		for i, it := range n.Content {
			it = deref(it)
			if it.Kind != yaml.ScalarNode || isNull(it) {
				a.fail(it.Line, fmt.Sprintf("%s[%d]", path, i), invalidf("want a single value, got a %s", kindName(it)))
				ok = false
				continue
			}
			items = append(items, it.Value)
		}
		if ok {
			v.Set(stringList(t, items))
			a.set(n.Line, path)
		}
	default:
		a.fail(n.Line, path, invalidf("want a list, got a %s", kindName(n)))
	}
}

// eachPair walks a mapping node: merge values first (the earlier of
// several merged mappings wins, as YAML says), then each key in order,
// reporting keys that are not plain names and keys given twice.
func (a *applier) eachPair(n *yaml.Node, path string, merge func(*yaml.Node), pair func(key string, k, v *yaml.Node)) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], deref(n.Content[i+1])
		if !isMerge(k) {
			continue
		}
		switch val.Kind {
		case yaml.SequenceNode:
			for j := len(val.Content) - 1; j >= 0; j-- {
				merge(deref(val.Content[j]))
			}
		default:
			merge(val)
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := deref(n.Content[i]), n.Content[i+1]
		if isMerge(k) {
			continue
		}
		if k.Kind != yaml.ScalarNode || isNull(k) {
			a.fail(k.Line, path, invalidf("a key must be a name, got a %s", kindName(k)))
			continue
		}
		full := joinPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			a.fail(k.Line, full, &problem{msg: fmt.Sprintf("set twice (first on line %d)", first), kind: ErrDuplicateKey})
			continue
		}
		seen[k.Value] = k.Line
		pair(k.Value, k, val)
	}
}

// deref follows aliases (*name) to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func isMerge(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == "<<" && n.ShortTag() == "!!merge"
}

func kindName(n *yaml.Node) string {
	switch {
	case isNull(n):
		return "null"
	case n.Kind == yaml.MappingNode:
		return "mapping"
	case n.Kind == yaml.SequenceNode:
		return "list"
	case n.Kind == yaml.ScalarNode:
		return "value"
	}
	return "node"
}
