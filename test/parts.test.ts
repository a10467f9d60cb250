import { afterAll, describe, expect, it } from "bun:test";
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { cleanupTempDirs, tempDir } from "./helpers/app.ts";

const root = resolve(import.meta.dir, "..");
afterAll(cleanupTempDirs);

/** The fake protocol's folder: a listener with one flag, an admin page and a nav entry, nothing else. */
const modbusPart = `import { Elysia } from "elysia";
import { option } from "../../lib/options.ts";
import { Layout } from "../../../views/layouts/base.tsx";
import { defineListener } from "../listener.ts";

/** modbusListener: a protocol added as one folder and one registry line. */
export const modbusListener = defineListener<{ port: number }>()({
  type: "modbus",
  accepts: ["modbus"],
  options: { modbusPort: option.port("Modbus/TCP", "off") },
  parseConfig: (o) => (o.modbusPort === null ? null : { port: o.modbusPort }),
  create: () => ({
    type: "modbus",
    async start() {},
    async stop() {},
    address: () => undefined,
    pages: {
      nav: { href: "/modbus", label: "Modbus devices" },
      routes: (kit) =>
        new Elysia({ name: "modbus-pages" }).get("/modbus", ({ request }) => (
          <Layout title="Modbus devices" admin={kit.adminOf(request)} active="/modbus">
            <p>modbus page of the part</p>
          </Layout>
        )),
    },
  }),
});
`;

/** The running app of the copied tree: sign in, then the part's page, the nav and `--help`. */
const probe = `import { createApp } from "./src/app.ts";
import { parseServeConfig, serveUsage as usage } from "./src/config.ts";
import { silentLogger } from "./src/lib/logger.ts";
const dir = process.argv[2]!;
const config = parseServeConfig(["--data-dir", dir, "--bind", "127.0.0.1", "--http-port", "0", "--https-port", "off", "--mqtt-port", "off", "--mqtts-port", "off", "--opcua-port", "off", "--modbus-port", "5020"], {});
const app = createApp(config, silentLogger, { hashCost: { memoryCost: 1024, timeCost: 1 } });
await app.start();
await app.core.admins.setPassword("admin", "correct-horse-battery");
const { token } = await app.core.admins.signIn("admin", "correct-horse-battery", "test");
const base = "http://127.0.0.1:" + app.address("http")!.port;
const get = (p: string) => fetch(base + p, { headers: { cookie: "gh_session=" + token } });
const page = await get("/modbus");
const list = await (await get("/integrations")).text();
console.log(JSON.stringify({ status: page.status, page: await page.text(), nav: list.includes('href="/modbus"'), help: usage.includes("--modbus-port"), listeners: app.listeners.map((l) => l.type) }));
await app.stop();
`;

describe("a part is one folder and one registry line", () => {
  it("a fake protocol with a page: tsc asks for its decisions, then the running app serves its page, nav entry and flag", async () => {
    const dir = tempDir("gatehouse-part-");
    for (const d of ["src", "views", "drizzle"]) cpSync(join(root, d), join(dir, d), { recursive: true });
    for (const f of ["package.json", "tsconfig.json"]) cpSync(join(root, f), join(dir, f));
    symlinkSync(join(root, "node_modules"), join(dir, "node_modules"));
    const tsconfig = JSON.parse(readFileSync(join(dir, "tsconfig.json"), "utf8"));
    tsconfig.include = ["src", "views", "probe.ts"];
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify(tsconfig));
    const edit = (file: string, from: RegExp | string, to: string) => {
      const text = readFileSync(join(dir, file), "utf8");
      const changed = text.replace(from, to);
      expect(changed).not.toBe(text);
      writeFileSync(join(dir, file), changed);
    };
    // incremental: the second run re-checks only what the part changed (two whole checks took most of the time)
    const tsc = () =>
      Bun.spawnSync(
        [
          join(root, "node_modules/.bin/tsc"),
          "--noEmit",
          "--incremental",
          "--tsBuildInfoFile",
          join(dir, ".tsbuildinfo"),
          "-p",
          dir,
        ],
        { cwd: dir },
      );

    // A type added to the one definition: tsc points at every place that must decide about it
    // (which listener admits it; what it may never do), so nobody defaults them silently.
    edit("src/core/types.ts", /(\n\s*vrpc: \{[^}]*\},)/, '$1\n  modbus: { label: "Modbus", name: "Modbus" },');
    writeFileSync(join(dir, "probe.ts"), probe);
    const first = tsc();
    expect(first.exitCode).not.toBe(0);
    expect(first.stdout.toString()).toContain("src/listeners/index.ts");
    expect(first.stdout.toString()).toContain("src/core/permissions.ts");
    // Its folder, its registry line and its rule: nothing else.
    mkdirSync(join(dir, "src/listeners/modbus"));
    writeFileSync(join(dir, "src/listeners/modbus/index.tsx"), modbusPart);
    edit(
      "src/listeners/index.ts",
      'import { vrpcListener } from "./vrpc/index.ts";',
      'import { vrpcListener } from "./vrpc/index.ts";\nimport { modbusListener } from "./modbus/index.tsx";',
    );
    edit("src/listeners/index.ts", /opcuaListener,?(\s*)\]/, "opcuaListener, modbusListener$1]");
    edit("src/core/permissions.ts", /(\n\s*vrpc: vrpcRule,)/, "$1\n  modbus: noVrpcInfo,");
    const second = tsc();
    expect(second.stdout.toString()).toBe("");
    expect(second.exitCode).toBe(0);

    const run = Bun.spawn(["bun", join(dir, "probe.ts"), tempDir("gatehouse-part-data-")], {
      cwd: dir,
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err] = await Promise.all([new Response(run.stdout).text(), new Response(run.stderr).text()]);
    expect(await run.exited, err).toBe(0);
    const seen = JSON.parse(out.trim().split("\n").at(-1)!);
    expect(seen.status).toBe(200);
    expect(seen.page).toContain("modbus page of the part");
    expect(seen.page).toContain('href="/modbus"');
    expect(seen.nav).toBe(true);
    expect(seen.help).toBe(true);
    expect(seen.listeners).toContain("modbus");
    // an upper bound for a loaded machine (two type checks of the whole tree), not a measurement
  }, 300_000);
});
