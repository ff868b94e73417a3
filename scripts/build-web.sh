#!/usr/bin/env bash
# Rebuilds web/playground.html from clients/js/playground (the page) and the
# SDK's sources: esbuild bundles and minifies the page's script, which is
# inlined so the page is one file that web/ embeds. The output is
# committed, so `go build` never needs npm; CI checks it is current
# (scripts/test-js.sh). Usage: scripts/build-web.sh [output file].
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-web/playground.html}
js=clients/js
[ -d "$js/node_modules" ] || (cd "$js" && npm ci --no-audit --no-fund >/dev/null)
bundle=$(cd "$js" && npx esbuild playground/app.ts --bundle --minify --format=esm --target=es2022 --legal-comments=none)
node -e '
const fs = require("fs");
const [page, out] = process.argv.slice(1);
const html = fs.readFileSync(page, "utf8");
const tag = "<script type=\"module\" src=\"app.js\"></script>";
if (!html.includes(tag)) throw new Error(page + ": no " + tag + " to replace");
const js = fs.readFileSync(0, "utf8").trim().replace(/<\/script/gi, "<\\/script");
fs.writeFileSync(out, "<!-- Built by scripts/build-web.sh from clients/js/playground: do not edit. -->\n" + html.replace(tag, () => "<script type=\"module\">\n" + js + "\n</script>"));
' "$js/playground/index.html" "$out" <<<"$bundle"
echo "built $out ($(wc -c <"$out") bytes)"
