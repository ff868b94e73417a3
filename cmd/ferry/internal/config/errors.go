package config

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors, wrapped by *Error.
var (
	// ErrUnknownSetting: a YAML key, or a path given to ApplyFlag, that
	// names no setting.
	ErrUnknownSetting = errors.New("unknown setting")
	// ErrInvalidValue: a value that cannot be read as the setting's type,
	// or YAML of the wrong shape (a list where a mapping belongs).
	ErrInvalidValue = errors.New("invalid value")
	// ErrDuplicateKey: the same key twice in one YAML mapping.
	ErrDuplicateKey = errors.New("duplicate key")
)

// Error is a problem with one setting from one source.
type Error struct {
	// Source is the file name, the environment variable, or "" for a
	// value given to ApplyFlag.
	Source string
	// Line is the line in the file, 0 when unknown or not a file.
	Line int
	// Path is the setting's yaml path (heartbeat.interval), "" for an
	// error about the whole source (YAML syntax).
	Path string
	// Err says what is wrong; errors.Is finds the sentinels through it.
	Err error
}

// Error formats as "source:line: path: problem", leaving out what is not
// known and the path when the source is the path's own variable.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Path != "" && e.Source != EnvName(e.Path) {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying problem.
func (e *Error) Unwrap() error { return e.Err }

// problem is a message that wraps a sentinel without repeating its text.
type problem struct {
	msg  string
	kind error
}

func (p *problem) Error() string { return p.msg }
func (p *problem) Unwrap() error { return p.kind }

func invalidf(format string, args ...any) error {
	return &problem{msg: fmt.Sprintf(format, args...), kind: ErrInvalidValue}
}
