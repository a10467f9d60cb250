/**
 * build: `bun run build` -> dist/gatehouse, one executable carrying views, htmx, css and migrations.
 * It does not auto-load .env or bunfig.toml from wherever it is started (an appliance should not).
 */
import { chmodSync, mkdirSync } from "node:fs";

mkdirSync("dist", { recursive: true });
const started = performance.now();
const result = await Bun.build({
  entrypoints: ["./src/main.ts"],
  compile: {
    outfile: "dist/gatehouse",
    autoloadDotenv: false,
    autoloadBunfig: false,
  },
  minify: true,
  sourcemap: "inline",
  plugins: [],
});
if (!result.success) {
  for (const log of result.logs) console.error(log);
  process.exit(1);
}
chmodSync("dist/gatehouse", 0o755);
const size = Bun.file("dist/gatehouse").size;
console.log(`built dist/gatehouse (${(size / 1e6).toFixed(1)} MB) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
