// Fails unless the package's tarball (npm pack --dry-run) holds the four builds, and only dist/.
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const out = execFileSync(npm, ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: root, encoding: "utf8" });
const [pack] = JSON.parse(out);
const files = new Set(pack.files.map((f) => f.path));
const required = ["dist/ieum-chat.min.js", "dist/index.mjs", "dist/index.cjs", "dist/index.d.ts", "dist/index.d.cts", "package.json", "README.md"];
const missing = required.filter((f) => !files.has(f));
const stray = [...files].filter((f) => !f.startsWith("dist/") && !["package.json", "README.md"].includes(f));
if (missing.length || stray.length) {
  if (missing.length) console.error(`missing from ${pack.filename}: ${missing.join(", ")} (run npm run build first)`);
  if (stray.length) console.error(`not meant for ${pack.filename}: ${stray.join(", ")}`);
  process.exit(1);
}
console.log(`${pack.filename}: ${files.size} files, ${pack.size} bytes packed; ${required.join(", ")} present`);
