import { describe, expect, it } from "bun:test";
import { cpSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { cleanupTempDirs, tempDir } from "./helpers/app.ts";

const root = resolve(import.meta.dir, "..");

function files(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.tsx?$/.test(e.name))
    .map((e) => relative(root, join(e.parentPath, e.name)));
}

/** importsOf: every module a file imports (static and dynamic), resolved to a repo path, with whether it is type-only. */
function importsOf(file: string): { target: string; typeOnly: boolean }[] {
  const text = readFileSync(join(root, file), "utf8");
  const out: { target: string; typeOnly: boolean }[] = [];
  for (const m of text.matchAll(/^(import|export)\s+(type\s+)?[^;]*?from\s+"(\.[^"]+)"|import\("(\.[^"]+)"\)|^import\s+"(\.[^"]+)"/gm)) {
    const spec = m[3] ?? m[4] ?? m[5]!;
    out.push({ target: relative(root, resolve(root, dirname(file), spec)), typeOnly: Boolean(m[2]) });
  }
  return out;
}

/** The house's layers: `lib <- db <- core <- {listeners, web} <- app <- cli <- main` (see STYLE.md). */
function allowed(from: string, to: string, typeOnly: boolean): boolean {
  const inside = (p: string, prefix: string) => p === prefix || p.startsWith(prefix + "/");
  if (!to.startsWith("src/") && !to.startsWith("views/")) return true; // package.json, drizzle/, node_modules
  if (inside(from, "views")) return inside(to, "views") || typeOnly || to === "src/core/types.ts";
  const layer = (p: string) => p.replace(/^src\//, "").split("/")[0]!.replace(/\.tsx?$/, "");
  const f = layer(from);
  const t = layer(to);
  if (f === t && f !== "listeners") return true;
  switch (f) {
    case "lib":
      return false;
    case "db":
      return t === "lib" || (typeOnly && to === "src/core/types.ts");
    case "core":
      return ["lib", "db"].includes(t);
    case "listeners": {
      if (t === "lib" || t === "core") return true;
      if (t !== "listeners") return false;
      const [, fp] = from.split("/").slice(1);
      const [, tp] = to.split("/").slice(1);
      const own = (x: string | undefined) => (x?.endsWith(".ts") ? undefined : x); // listener.ts / index.ts sit at the top
      if (own(fp) === undefined) return true; // the contract and the registry see every listener
      return own(tp) === undefined ? tp === "listener.ts" : tp === fp; // never another adapter
    }
    case "web":
      return ["lib", "core"].includes(t) || inside(to, "views");
    case "app":
    case "config":
    case "version":
      return ["lib", "db", "core", "listeners", "web", "app", "config", "version"].includes(t);
    case "cli":
      return ["lib", "db", "core", "app", "config", "version"].includes(t);
    case "main":
      return ["cli", "version", "config"].includes(t);
    default:
      return false;
  }
}

describe("architecture", () => {
  it("imports point one way: lib <- db <- core <- {listeners, web} <- app <- cli <- main; no adapter imports another", () => {
    const wrong: string[] = [];
    for (const file of [...files("src"), ...files("views")]) {
      for (const { target, typeOnly } of importsOf(file)) if (!allowed(file, target, typeOnly)) wrong.push(`${file} -> ${target}${typeOnly ? " (type)" : ""}`);
    }
    expect(wrong).toEqual([]);
  });

  it("the CLI verbs for integrations load neither the broker nor the web server", () => {
    const seen = new Set<string>();
    const walk = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const { target, typeOnly } of importsOf(file)) if (!typeOnly && /\.tsx?$/.test(target) && target.startsWith("src/")) walk(target);
    };
    walk("src/cli/integrations.ts");
    walk("src/cli/admin.ts");
    expect([...seen].filter((f) => f.startsWith("src/listeners/") || f.startsWith("src/web/") || f === "src/app.ts")).toEqual([]);
  });

  it("adding a type to the one definition makes tsc point at every place that must decide about it", () => {
    const dir = tempDir("gatehouse-modbus-");
    for (const d of ["src", "views", "drizzle"]) cpSync(join(root, d), join(dir, d), { recursive: true });
    for (const f of ["package.json", "tsconfig.json"]) cpSync(join(root, f), join(dir, f));
    symlinkSync(join(root, "node_modules"), join(dir, "node_modules"));
    const tsconfig = JSON.parse(readFileSync(join(dir, "tsconfig.json"), "utf8"));
    tsconfig.include = ["src", "views"];
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify(tsconfig));
    const typesFile = join(dir, "src/core/types.ts");
    const types = readFileSync(typesFile, "utf8");
    const added = types.replace(/(\n\s*vrpc: \{[^}]*\},)/, '$1\n  modbus: { label: "Modbus", name: "Modbus" },');
    expect(added).not.toBe(types);
    writeFileSync(typesFile, added);
    const tsc = Bun.spawnSync([join(root, "node_modules/.bin/tsc"), "--noEmit", "-p", dir], { cwd: dir });
    const out = tsc.stdout.toString();
    expect(tsc.exitCode).not.toBe(0);
    // Which listener admits it, and what it may never do: decisions nobody should default silently.
    expect(out).toContain("src/listeners/index.ts");
    expect(out).toContain("src/core/permissions.ts");
  }, 60_000);
});

process.on("exit", cleanupTempDirs);
