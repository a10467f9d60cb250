import { envOf } from "../src/lib/options.ts";
import { afterAll, describe, expect, it } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, parseServeConfig, serveUsage as usage } from "../src/config.ts";
import { listenerRegistry } from "../src/listeners/index.ts";

const optionsOf = (config: ReturnType<typeof parseServeConfig>, type: string) =>
  config.listeners.find((l) => l.module.type === type)?.options as Record<string, unknown> | undefined;

describe("serve configuration", () => {
  it("takes defaults, then the environment, then flags", () => {
    expect(parseServeConfig([], {}).httpPort).toBe(8080);
    expect(parseServeConfig([], { GATEHOUSE_HTTP_PORT: "9000" }).httpPort).toBe(9000);
    expect(parseServeConfig(["--http-port", "9100"], { GATEHOUSE_HTTP_PORT: "9000" }).httpPort).toBe(9100);
    expect(optionsOf(parseServeConfig([], {}), "mqtt")).toMatchObject({ port: 1883 });
    expect(optionsOf(parseServeConfig([], { GATEHOUSE_MQTT_PORT: "1884" }), "mqtt")).toMatchObject({ port: 1884 });
    expect(optionsOf(parseServeConfig(["--mqtt-port", "1885"], { GATEHOUSE_MQTT_PORT: "1884" }), "mqtt")).toMatchObject(
      { port: 1885 },
    );
  });

  it("an empty environment variable counts as unset", () => {
    expect(parseServeConfig([], { GATEHOUSE_HTTP_PORT: "" }).httpPort).toBe(8080);
  });

  it("`off` leaves a listener out", () => {
    const types = parseServeConfig(["--opcua-port", "off", "--mqtt-port", "off"], {}).listeners.map(
      (l) => l.module.type,
    );
    expect(types).toEqual(["http", "vrpc"]);
  });

  it("refuses bad values with a message naming the flag", () => {
    for (const [argv, flag] of [
      [["--http-port", "70000"], "--http-port"],
      [["--mqtt-port", "x"], "--mqtt-port"],
      [["--opcua-trust-all", "yes"], "--opcua-trust-all"],
      [["--session-ttl", "5"], "--session-ttl"],
      [["--log-level", "loud"], "--log-level"],
      [["--no-such-flag"], "no-such-flag"],
      [["--forward-auth-proxy", "apache"], "--forward-auth-proxy"],
      [["--forward-auth-proxy", "NGINX"], "--forward-auth-proxy"],
      [["--trusted-proxies", "localhost"], "--trusted-proxies"],
      [["--trusted-proxies", "10.0.0.0/40"], "--trusted-proxies"],
    ] as const) {
      expect(() => parseServeConfig([...argv], {})).toThrow(ConfigError);
      expect(() => parseServeConfig([...argv], {})).toThrow(flag);
    }
  });

  it("names no proxy and trusts no proxy unless told", () => {
    const plain = parseServeConfig([], {});
    expect(optionsOf(plain, "http")).toMatchObject({ forwardAuthProxy: "off" });
    expect(plain.trustedProxies.text).toEqual([]);
    const named = parseServeConfig(["--forward-auth-proxy", "caddy"], {
      GATEHOUSE_TRUSTED_PROXIES: "127.0.0.1, 10.0.0.0/8",
    });
    expect(optionsOf(named, "http")).toMatchObject({ forwardAuthProxy: "caddy" });
    expect(named.trustedProxies.text).toEqual(["127.0.0.1", "10.0.0.0/8"]);
  });

  it("the accept pool: --max-pending and --pending-timeout, with defaults", () => {
    expect(parseServeConfig([], {})).toMatchObject({ maxPending: 2000, pendingTimeoutSeconds: 10, warnings: [] });
    expect(parseServeConfig(["--max-pending", "300", "--pending-timeout", "5"], {})).toMatchObject({
      maxPending: 300,
      pendingTimeoutSeconds: 5,
    });
    expect(() => parseServeConfig(["--pending-timeout", "0"], {})).toThrow("--pending-timeout");
  });

  it("a unit file of an earlier release still starts: the old pending flags parse, with a warning saying what they mean now", () => {
    const old = parseServeConfig(["--mqtt-max-pending", "700"], { GATEHOUSE_MQTT_MAX_PENDING_PER_ADDRESS: "64" });
    expect(old.maxPending).toBe(700);
    expect(old.warnings.join("\n")).toContain(
      "--mqtt-max-pending (GATEHOUSE_MQTT_MAX_PENDING) is deprecated: read as --max-pending",
    );
    expect(old.warnings.join("\n")).toContain(
      "--mqtt-max-pending-per-address (GATEHOUSE_MQTT_MAX_PENDING_PER_ADDRESS) is ignored",
    );
    expect(parseServeConfig(["--mqtt-max-pending", "700", "--max-pending", "900"], {}).maxPending).toBe(900); // the new name wins
    expect(() => parseServeConfig(["--mqtt-max-pending-per-address", "lots"], {})).toThrow(
      "--mqtt-max-pending-per-address",
    );
    expect(usage).toMatch(/Deprecated names[\s\S]*--mqtt-max-pending N[\s\S]*--mqtt-max-pending-per-address N/);
  });

  it("--help lists every registered listener's flags with their environment twins", () => {
    for (const m of listenerRegistry) for (const name of Object.keys(m.options)) expect(usage).toContain(envOf(name));
  });
});

describe("the first admin's password from a file", () => {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-config-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string, mode = 0o600) => {
    const path = join(dir, name);
    writeFileSync(path, text, { mode });
    chmodSync(path, mode);
    return path;
  };

  it("reads --admin-password-file / GATEHOUSE_ADMIN_PASSWORD_FILE (one trailing newline dropped)", () => {
    const path = file("pw", "from-a-file-password\n");
    expect(parseServeConfig(["--admin-password-file", path], {})).toMatchObject({
      adminPassword: "from-a-file-password",
      adminPasswordSource: "--admin-password-file",
    });
    expect(parseServeConfig([], { GATEHOUSE_ADMIN_PASSWORD_FILE: path }).adminPassword).toBe("from-a-file-password");
  });

  it("reads the systemd credential admin-password from $CREDENTIALS_DIRECTORY; a lone newline there means none", () => {
    const creds = join(dir, "creds");
    mkdirSync(creds);
    writeFileSync(join(creds, "admin-password"), "from-a-credential\n", { mode: 0o400 });
    expect(parseServeConfig([], { CREDENTIALS_DIRECTORY: creds })).toMatchObject({
      adminPassword: "from-a-credential",
      adminPasswordSource: "systemd credential admin-password",
    });
    const fallback = join(dir, "fallback");
    mkdirSync(fallback);
    writeFileSync(join(fallback, "admin-password"), "\n", { mode: 0o400 }); // the unit's SetCredential=admin-password:\n
    expect(parseServeConfig([], { CREDENTIALS_DIRECTORY: fallback }).adminPassword).toBeUndefined();
    expect(parseServeConfig([], { CREDENTIALS_DIRECTORY: join(dir, "none") }).adminPassword).toBeUndefined();
  });

  it("refuses a file others may read, an empty or multi-line one, a short password, and a file beside the variable", () => {
    for (const [path, message] of [
      [file("world", "world-readable-password\n", 0o644), "mode 0644"],
      [file("group", "group-readable-password\n", 0o640), "mode 0640"],
      [file("empty", ""), "is empty"],
      [file("lines", "first-line-password\nsecond\n"), "more than one line"],
      [file("short", "short\n"), "8 to 256 characters"],
      [join(dir, "missing"), "ENOENT"],
      [dir, "not a regular file"],
    ] as const) {
      expect(() => parseServeConfig(["--admin-password-file", path], {})).toThrow(ConfigError);
      expect(() => parseServeConfig(["--admin-password-file", path], {})).toThrow(message);
    }
    const env: Record<string, string | undefined> = { GATEHOUSE_ADMIN_PASSWORD: "from-the-environment" };
    expect(() => parseServeConfig(["--admin-password-file", file("both", "from-a-file-password\n")], env)).toThrow(
      "both set",
    );
    expect(env.GATEHOUSE_ADMIN_PASSWORD).toBeUndefined();
  });
});
