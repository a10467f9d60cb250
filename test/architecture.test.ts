import { describe, expect, it } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { scanImports, type ImportEdge } from "./helpers/imports.ts";

const root = resolve(import.meta.dir, "..");

/** A written exception to a rule: `// layer-exception: <why>` right above the import. */
const exceptionMark = /layer-exception:\s*\S/;

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.tsx?$/.test(e.name))
    .map((e) => relative(root, join(e.parentPath, e.name)));
}

/** Tree: file path -> its text; the checks run on this, so a test can hand them a mutated tree. */
type Tree = Map<string, string>;

function repoTree(): Tree {
  return new Map([...sourceFiles("src"), ...sourceFiles("views")].map((f) => [f, readFileSync(join(root, f), "utf8")]));
}

const inside = (p: string, prefix: string) => p === prefix || p.startsWith(`${prefix}/`);
/** layer: the first folder (or file) under src/, or "views". */
const layer = (p: string) =>
  inside(p, "views")
    ? "views"
    : p
        .replace(/^src\//, "")
        .split("/")[0]!
        .replace(/\.tsx?$/, "");

/**
 * allowed: the house's layers, `lib <- db <- core <- {listeners, connectors, web} <- app <- cli <- main`,
 * type imports included. Views take plain props: they import views and the core's types (values only
 * from core/types.ts, the one definition of the type lists), never db, lib or anything that runs; a
 * part's own views (src/listeners/<part>/views/, src/connectors/<part>/views/) likewise, plus their
 * part's types. A part's pages (its routes) may use the shared views; `web/` names no part. Connectors
 * (outbound parts) follow the listeners' rule: lib, core, views and their own folder, never a listener,
 * another connector or web/; the CLI may reach a connector's store (`gatehouse uplinks`), never a listener.
 */
function allowed(from: string, edge: ImportEdge): boolean {
  const to = edge.target;
  if (to === "<computed>") return false; // a module named by an expression cannot be checked
  if (!to.startsWith("src/") && !to.startsWith("views/")) return !to.startsWith("."); // packages, drizzle/, package.json
  const f = layer(from);
  const t = layer(to);
  if (f === "views") return t === "views" || (inside(to, "src/core") && (edge.typeOnly || to === "src/core/types.ts"));
  // A part's own views (src/<listeners|connectors>/<part>/views/) follow the views' rule, plus their part's types.
  const partView = /^src\/(listeners|connectors)\/([^/]+)\/views\//.exec(from);
  if (partView) {
    const part = `src/${partView[1]}/${partView[2]}`;
    return (
      t === "views" ||
      ((inside(to, "src/core") || inside(to, part)) &&
        (edge.typeOnly || to === "src/core/types.ts" || inside(to, `${part}/views`)))
    );
  }
  if (f === t && f !== "listeners" && f !== "connectors") return true;
  switch (f) {
    case "lib":
      return false;
    case "db":
      return t === "lib";
    case "core":
      return t === "lib" || t === "db";
    case "listeners":
    case "connectors": {
      // a part's pages render with the shared layout and components
      if (t === "lib" || t === "core" || t === "views") return true;
      if (t !== f) return false; // a listener never reaches a connector, nor a connector a listener
      const [, fp] = from.split("/").slice(1);
      const [, tp] = to.split("/").slice(1);
      const own = (x: string | undefined) => (x?.endsWith(".ts") ? undefined : x); // the contract / index.ts sit at the top
      if (own(fp) === undefined) return true; // the contract and the registry see every part of their kind
      return own(tp) === undefined ? tp === "listener.ts" || tp === "connector.ts" : tp === fp; // never another part
    }
    case "web":
      return t === "lib" || t === "core" || t === "views";
    case "app":
    case "config":
    case "version":
      return ["lib", "db", "core", "listeners", "connectors", "web", "app", "config", "version"].includes(t);
    case "cli":
      return ["lib", "db", "core", "connectors", "app", "config", "version", "cli"].includes(t);
    case "main":
      return ["cli", "version", "config"].includes(t);
    default:
      return false;
  }
}

/** layerViolations: every import that points the wrong way, unless a comment above it says why. */
function layerViolations(tree: Tree): string[] {
  const wrong: string[] = [];
  for (const [file, text] of tree) {
    for (const edge of scanImports(root, file, text)) {
      if (allowed(file, edge) || exceptionMark.test(edge.comment)) continue;
      wrong.push(`${file}:${edge.line} -> ${edge.target} (${edge.kind}${edge.typeOnly ? ", type" : ""})`);
    }
  }
  return wrong;
}

/** circles: import cycles between files (type imports included), each listed once from its smallest path. */
function circles(tree: Tree): string[] {
  const graph = new Map<string, string[]>();
  for (const [file, text] of tree) {
    const targets = scanImports(root, file, text)
      .filter((e) => !exceptionMark.test(e.comment))
      .map((e) => e.target)
      .filter((t) => tree.has(t));
    graph.set(file, [...new Set(targets)]);
  }
  // Tarjan's strongly connected components: any component of more than one file is a circle.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[] = [];
  let next = 0;
  const connect = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort().join(" <-> "));
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) connect(v);
  return found.sort();
}

describe("architecture", () => {
  it("imports point one way: lib <- db <- core <- {listeners, connectors, web} <- app <- cli <- main; views take types; no part imports another", () => {
    expect(layerViolations(repoTree())).toEqual([]);
  });

  it("no two files import each other, directly or around a circle (type imports included)", () => {
    expect(circles(repoTree())).toEqual([]);
  });

  describe("the checks catch what a regex would miss", () => {
    // Each mutation adds one wrong import to an otherwise clean tree: every one must be reported.
    const mutations: [string, string, string][] = [
      ["single quotes", "src/lib/logger.ts", "import { createCore } from '../core/index.ts';\n"],
      ["a require", "src/lib/logger.ts", 'const core = require("../core/index.ts");\n'],
      ["a dynamic import", "src/core/bus.ts", 'export const later = () => import("../web/app.tsx");\n'],
      ["a re-export", "src/core/bus.ts", 'export * from "../listeners/index.ts";\n'],
      ["a side-effect import", "src/db/client.ts", 'import "../core/index.ts";\n'],
      [
        "a type import from views into db",
        "views/components/csrf.tsx",
        'import type { ActivityRow } from "../../src/db/schema.ts";\n',
      ],
      ["an import type reference", "src/lib/http.ts", 'export type C = import("../core/index.ts").Core;\n'],
      [
        "an adapter importing another",
        "src/listeners/opcua/certificates.ts",
        "import { connackFor } from '../mqtt/broker.ts';\n",
      ],
      [
        "a computed module name",
        "src/core/bus.ts",
        'const name = "../web/app.tsx";\nexport const later = () => import(name);\n',
      ],
      ["a multi-line import", "src/lib/ids.ts", 'import {\n  createApp,\n} from\n  "../app.ts";\n'],
      [
        "a connector importing a listener",
        "src/connectors/uplink/index.ts",
        'import { mqttListener } from "../../listeners/mqtt/index.ts";\n',
      ],
      ["a connector importing the web layer", "src/connectors/uplink/index.ts", 'import "../../web/app.tsx";\n'],
      ["a connector importing the database layer", "src/connectors/uplink/index.ts", 'import "../../db/client.ts";\n'],
      [
        "a listener importing a connector",
        "src/listeners/mqtt/hooks.ts",
        'import { uplinkConnector } from "../../connectors/uplink/index.ts";\n',
      ],
      ["the core naming a connector", "src/core/bus.ts", 'import "../connectors/index.ts";\n'],
      ["the web layer naming a connector", "src/web/app.tsx", 'import "../connectors/uplink/index.ts";\n'],
    ];
    for (const [name, file, line] of mutations) {
      it(`reports ${name}`, () => {
        const tree = repoTree();
        expect(tree.has(file)).toBe(true);
        tree.set(file, line + tree.get(file)!);
        expect(layerViolations(tree).some((v) => v.startsWith(`${file}:`))).toBe(true);
      });
    }

    it("reports a circle made of type imports", () => {
      const tree = repoTree();
      tree.set("src/core/bus.ts", `import type { Core } from "./index.ts";\n${tree.get("src/core/bus.ts")!}`);
      expect(circles(tree).some((c) => c.includes("src/core/bus.ts") && c.includes("src/core/index.ts"))).toBe(true);
    });

    it("accepts an exception only with a reason written above it", () => {
      const tree = repoTree();
      tree.set(
        "src/db/client.ts",
        `// layer-exception:\nimport type { Core } from "../core/index.ts";\n${tree.get("src/db/client.ts")!}`,
      );
      expect(layerViolations(tree).some((v) => v.startsWith("src/db/client.ts:"))).toBe(true);
      tree.set(
        "src/db/client.ts",
        `// layer-exception: a test of the exception rule\nimport type { Core } from "../core/index.ts";\n${repoTree().get("src/db/client.ts")!}`,
      );
      expect(layerViolations(tree).some((v) => v.startsWith("src/db/client.ts:"))).toBe(false);
    });
  });

  it("the CLI verbs for integrations and uplinks load neither the broker nor the web server (nor mqtt.js)", () => {
    const tree = repoTree();
    const seen = new Set<string>();
    const walk = (file: string) => {
      if (seen.has(file) || !tree.has(file)) return;
      seen.add(file);
      for (const e of scanImports(root, file, tree.get(file)!)) if (!e.typeOnly) walk(e.target);
    };
    walk("src/cli/integrations.ts");
    walk("src/cli/admin.ts");
    walk("src/cli/uplinks.ts");
    expect(
      [...seen].filter((f) => f.startsWith("src/listeners/") || f.startsWith("src/web/") || f === "src/app.ts"),
    ).toEqual([]);
    // `gatehouse uplinks` reads and writes the table and the outbox file: it never loads mqtt.js
    const packages = [...seen].flatMap((f) => scanImports(root, f, tree.get(f)!).filter((e) => !e.typeOnly));
    expect(packages.filter((e) => e.target === "mqtt").map((e) => e.target)).toEqual([]);
  });
});
