// The published declarations compile an application that uses every documented name and
// signature (test/types/consumer.ts), under strict TypeScript with NodeNext resolution.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import { test } from "node:test";

import { packageRoot } from "./support.mjs";

test("dist/index.d.ts types the documented API", () => {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  let output = "";
  try {
    execFileSync(process.execPath, [tsc, "-p", join(packageRoot, "test/types/tsconfig.json")], { encoding: "utf8" });
  } catch (error) {
    output = `${error.stdout ?? ""}${error.stderr ?? ""}`;
  }
  assert.equal(output, "", "the consumer compiles without errors");
});
