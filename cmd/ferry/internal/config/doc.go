// Package config loads a node's server.Config the way `ferry serve` and
// `ferry config check` do: the defaults of server.Default, then a YAML file,
// then FERRY_* environment variables, then command-line flags (which the
// caller applies with ApplyFlag after Load).
//
// Settings are named by their yaml path (heartbeat.interval); the
// environment variable of a setting is that path upper-cased, with "_" for
// ".", behind FERRY_ (FERRY_HEARTBEAT_INTERVAL). Both are derived from the
// yaml tags of server.Config by reflection, so a field added there is
// loadable from every source without touching this package.
//
// Every source is parsed the same way: strings as written, integers in
// decimal, floats as decimal numbers, booleans as strconv.ParseBool reads
// them, durations as Go durations ("25s", "1m30s"), string lists as a YAML
// sequence or a comma-separated value. The namespaces map is set from the
// file, or as a whole from FERRY_NAMESPACES (or a flag) holding a YAML or
// JSON mapping. A key the Config does not have is an error, and every error
// names its source and the setting's yaml path (with the line in a file).
package config
