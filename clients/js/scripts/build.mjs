// Builds dist/: ESM and CommonJS (dependencies left to the consumer's bundler or Node),
// the browser IIFE bundle with @stomp/stompjs and sockjs-client inside (global IeumChat),
// and the type declarations (tsc).
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const pkg = require(join(root, "package.json"));
const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });

const common = {
  entryPoints: [join(root, "src/index.ts")],
  bundle: true,
  target: "es2020",
  sourcemap: true,
  logLevel: "warning",
  define: { __VERSION__: JSON.stringify(pkg.version) },
};
const external = Object.keys(pkg.dependencies ?? {});

await Promise.all([
  build({ ...common, format: "esm", platform: "neutral", external, outfile: join(dist, "index.mjs") }),
  build({ ...common, format: "cjs", platform: "node", external, outfile: join(dist, "index.cjs") }),
  build({
    ...common,
    format: "iife",
    globalName: "IeumChat",
    platform: "browser",
    minify: true,
    outfile: join(dist, "ieum-chat.min.js"),
    define: { ...common.define, global: "globalThis", "process.env.NODE_ENV": '"production"' },
  }),
]);

const tsc = require.resolve("typescript/bin/tsc");
execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.json"), "--outDir", dist], { stdio: "inherit" });
// CommonJS consumers resolve "require" to index.d.cts: the same declarations, linked as .cts.
for (const name of readdirSync(dist).filter((f) => f.endsWith(".d.ts"))) {
  const text = readFileSync(join(dist, name), "utf8").replace(/(from\s+["']\.\/[^"']+)\.js(["'])/g, "$1.cjs$2");
  writeFileSync(join(dist, name.replace(/\.d\.ts$/, ".d.cts")), text);
}
console.log("built dist/: index.mjs, index.cjs, index.d.ts, ieum-chat.min.js");
