import { describe, expect, it } from "bun:test";
import { ConfigError, parseServeConfig, usage } from "../src/config.ts";
import { listenerRegistry } from "../src/listeners/index.ts";

const optionsOf = (config: ReturnType<typeof parseServeConfig>, type: string) => config.listeners.find((l) => l.module.type === type)?.options as Record<string, unknown> | undefined;

describe("serve configuration", () => {
  it("takes defaults, then the environment, then flags", () => {
    expect(parseServeConfig([], {}).httpPort).toBe(8080);
    expect(parseServeConfig([], { GATEHOUSE_HTTP_PORT: "9000" }).httpPort).toBe(9000);
    expect(parseServeConfig(["--http-port", "9100"], { GATEHOUSE_HTTP_PORT: "9000" }).httpPort).toBe(9100);
    expect(optionsOf(parseServeConfig([], {}), "mqtt")).toMatchObject({ port: 1883 });
    expect(optionsOf(parseServeConfig([], { GATEHOUSE_MQTT_PORT: "1884" }), "mqtt")).toMatchObject({ port: 1884 });
    expect(optionsOf(parseServeConfig(["--mqtt-port", "1885"], { GATEHOUSE_MQTT_PORT: "1884" }), "mqtt")).toMatchObject({ port: 1885 });
  });

  it("an empty environment variable counts as unset", () => {
    expect(parseServeConfig([], { GATEHOUSE_HTTP_PORT: "" }).httpPort).toBe(8080);
  });

  it("`off` leaves a listener out", () => {
    const types = parseServeConfig(["--opcua-port", "off", "--mqtt-port", "off"], {}).listeners.map((l) => l.module.type);
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
    ] as const) {
      expect(() => parseServeConfig([...argv], {})).toThrow(ConfigError);
      expect(() => parseServeConfig([...argv], {})).toThrow(flag);
    }
  });

  it("the accept pool: --max-pending and --pending-timeout, with defaults", () => {
    expect(parseServeConfig([], {})).toMatchObject({ maxPending: 2000, pendingTimeoutSeconds: 10, warnings: [] });
    expect(parseServeConfig(["--max-pending", "300", "--pending-timeout", "5"], {})).toMatchObject({ maxPending: 300, pendingTimeoutSeconds: 5 });
    expect(() => parseServeConfig(["--pending-timeout", "0"], {})).toThrow("--pending-timeout");
  });

  it("a unit file of an earlier release still starts: the old pending flags parse, with a warning saying what they mean now", () => {
    const old = parseServeConfig(["--mqtt-max-pending", "700"], { GATEHOUSE_MQTT_MAX_PENDING_PER_ADDRESS: "64" });
    expect(old.maxPending).toBe(700);
    expect(old.warnings.join("\n")).toContain("--mqtt-max-pending (GATEHOUSE_MQTT_MAX_PENDING) is deprecated: read as --max-pending");
    expect(old.warnings.join("\n")).toContain("--mqtt-max-pending-per-address (GATEHOUSE_MQTT_MAX_PENDING_PER_ADDRESS) is ignored");
    expect(parseServeConfig(["--mqtt-max-pending", "700", "--max-pending", "900"], {}).maxPending).toBe(900); // the new name wins
    expect(() => parseServeConfig(["--mqtt-max-pending-per-address", "lots"], {})).toThrow("--mqtt-max-pending-per-address");
    expect(usage).toMatch(/Deprecated names[^]*--mqtt-max-pending N[^]*--mqtt-max-pending-per-address N/);
  });

  it("--help lists every registered listener's flags with their environment twins", () => {
    for (const m of listenerRegistry) for (const spec of Object.values(m.configKeys)) expect(usage).toContain(spec.env);
  });
});
