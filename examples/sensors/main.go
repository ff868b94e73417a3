// Command sensors serves the sensor network's dashboard: a page that
// follows sensors:readings and decrypts each batch of readings with the
// key it holds (given in the URL fragment, which browsers never send to a
// server). The page server never sees the key: it serves the page and
// forwards /v1/ (the transparency report included). The devices are a
// separate program, ./devices. See README.md.
package main

import "github.com/ferry-io/ferry/examples/internal/demo"

func main() { demo.Main("sensors", "examples/sensors/web", nil, nil) }
