package web

import "embed"

// Admin holds the admin page's files (admin/): the dashboard and login
// templates (index.html, login.html, filled in by internal/admin) and the
// script and style they load (app.js, app.css). No build step: they are
// written as served.
//
//go:embed admin
var Admin embed.FS
