// Command editor serves the collaborative editor's page. The editor needs
// no back end of its own: each document is a Yjs document whose updates
// travel on the channel docs:NAME (kept in the node's history, from which
// a late joiner catches up), and whose awareness (who is here, where the
// cursors are) travels on cursors:NAME, conflated per editor. Run it in
// front of one node, or of a proxy over a cluster. See README.md.
package main

import "github.com/ferry-io/ferry/examples/internal/demo"

func main() { demo.Main("editor", "examples/editor/web", nil, nil) }
