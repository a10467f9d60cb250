/**
 * build: `bun run build` -> dist/gatehouse, one executable carrying views, htmx, css and migrations.
 * It does not auto-load .env or bunfig.toml from wherever it is started (an appliance should not).
 */
import type { BunPlugin } from "bun";
import { chmodSync, mkdirSync, readFileSync } from "node:fs";

/**
 * node-opcua-server reads its own package.json at load time (for the version it advertises):
 * inside the binary that file does not exist. The read is replaced by the version itself, and
 * the build fails loudly if the pattern ever stops matching.
 */
const inlineOpcuaServerVersion: BunPlugin = {
  name: "inline-node-opcua-server-version",
  setup(build) {
    build.onLoad({ filter: /node-opcua-server[\\/]dist[\\/]opcua_server\.js$/ }, async ({ path }) => {
      const source = await Bun.file(path).text();
      const read = /JSON\.parse\(fs\.readFileSync\(path\.join\(here, "\.\.", "package\.json"\), "utf8"\)\)/;
      if (!read.test(source))
        throw new Error(`build: the package.json read in ${path} changed; update scripts/build.ts`);
      const version = JSON.parse(
        readFileSync(new URL("../node_modules/node-opcua-server/package.json", import.meta.url), "utf8"),
      ).version;
      return { contents: source.replace(read, JSON.stringify({ version })), loader: "js" };
    });
  },
};

// `bun run build -- --target linux-arm64` (or linux-x64): a binary for that machine, named after it;
// Bun fetches that platform's runtime from the npm registry. Without --target: dist/gatehouse for this one.
const targetArg = process.argv.indexOf("--target");
const target = targetArg > 0 ? process.argv[targetArg + 1] : undefined;
if (target !== undefined && !/^linux-(x64|arm64)$/.test(target)) {
  console.error(`build: --target must be linux-x64 or linux-arm64, got "${target}"`);
  process.exit(2);
}
const outfile = target ? `dist/gatehouse-${target}` : "dist/gatehouse";

// A worker thread runs its own entry (the broker store's writer): each `src/**/*.worker.ts` is an entrypoint
// of its own, embedded at its path below src/, where src/lib/workers.ts finds it.
const workers = [...new Bun.Glob("src/**/*.worker.ts").scanSync(".")].sort().map((f) => `./${f}`);

mkdirSync("dist", { recursive: true });
const started = performance.now();
const result = await Bun.build({
  entrypoints: ["./src/main.ts", ...workers],
  compile: {
    outfile,
    ...(target ? { target: `bun-${target}` as "bun-linux-x64" } : {}),
    autoloadDotenv: false,
    autoloadBunfig: false,
  },
  minify: true,
  // No embedded source map: it costs ~10 MB of resident memory in the running appliance (measured
  // with bun run bench:startup); stack traces in logs then name minified positions.
  sourcemap: "none",
  plugins: [inlineOpcuaServerVersion],
});
if (!result.success) {
  for (const log of result.logs) console.error(log);
  process.exit(1);
}
chmodSync(outfile, 0o755);
const size = Bun.file(outfile).size;
console.log(
  `built ${outfile} (${(size / 1e6).toFixed(1)} MB) in ${((performance.now() - started) / 1000).toFixed(1)} s`,
);
