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
    const named = parseServeConfig(["--forward-auth-proxy", "caddy"], { GATEHOUSE_TRUSTED_PROXIES: "127.0.0.1, 10.0.0.0/8" });
    expect(optionsOf(named, "http")).toMatchObject({ forwardAuthProxy: "caddy" });
    expect(named.trustedProxies.text).toEqual(["127.0.0.1", "10.0.0.0/8"]);
  });

  it("--help lists every registered listener's flags with their environment twins", () => {
    for (const m of listenerRegistry) for (const spec of Object.values(m.configKeys)) expect(usage).toContain(spec.env);
  });
});
