// Builds each example's page with esbuild: examples/APP/web/main.ts ->
// examples/APP/web/dist/APP.js. The SDK is bundled from its TypeScript
// source (clients/js/src), so no separate SDK build is needed.
import { build } from "esbuild";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const sdk = path.resolve(here, "../clients/js/src");
const apps = process.argv.slice(2).length ? process.argv.slice(2) : ["ticker", "sensors", "auction", "editor"];

for (const app of apps) {
  await build({
    entryPoints: [path.join(here, app, "web", "main.ts")],
    outfile: path.join(here, app, "web", "dist", `${app}.js`),
    bundle: true,
    format: "esm",
    target: "es2022",
    sourcemap: true,
    logLevel: "warning",
    alias: {
      "@ferry/client/e2e": path.join(sdk, "e2e.ts"),
      "@ferry/client": path.join(sdk, "index.ts"),
    },
  });
  console.log(`built ${app}/web/dist/${app}.js`);
}
