import { parseArgs } from "node:util";
import type { LogLevel } from "./lib/logger.ts";

/** Config: everything `serve` needs, validated once; the only reader of argv/env is this file. */
export interface Config {
  readonly dataDir: string;
  readonly bind: string;
  readonly httpPort: number;
  /** null: the listener is off */
  readonly mqttPort: number | null;
  readonly opcuaPort: number | null;
  readonly mqttMaxConnections: number;
  /** labs only: trust every OPC UA client certificate on first contact */
  readonly opcuaTrustAll: boolean;
  readonly mqttMaxPacketBytes: number;
  readonly logLevel: LogLevel;
  /** GATEHOUSE_ADMIN_PASSWORD: creates admin `admin` on first start (env only: flags show up in `ps`). */
  readonly adminPassword?: string;
  /** Public base URL used in the logged setup link; defaults to http://<bind>:<port>. */
  readonly publicUrl?: string;
  /** Admin session lifetime in seconds. */
  readonly sessionTtlSeconds: number;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

interface OptionSpec {
  flag: string;
  env: string;
  help: string;
  default?: string;
}

/** serveOptions: every flag of `serve` with its environment twin; `--help` is generated from this. */
export const serveOptions: Record<string, OptionSpec> = {
  "data-dir": { flag: "--data-dir DIR", env: "GATEHOUSE_DATA_DIR", help: "database, PKI and state", default: "./data" },
  bind: { flag: "--bind ADDR", env: "GATEHOUSE_BIND", help: "address every listener binds to", default: "0.0.0.0" },
  "http-port": { flag: "--http-port N", env: "GATEHOUSE_HTTP_PORT", help: "admin page and HTTP API (0 = any free port)", default: "8080" },
  "mqtt-port": { flag: "--mqtt-port N", env: "GATEHOUSE_MQTT_PORT", help: "MQTT broker (0 = any free port, off = none)", default: "1883" },
  "opcua-port": { flag: "--opcua-port N", env: "GATEHOUSE_OPCUA_PORT", help: "OPC UA server (0 = any free port, off = none)", default: "4840" },
  "mqtt-max-connections": { flag: "--mqtt-max-connections N", env: "GATEHOUSE_MQTT_MAX_CONNECTIONS", help: "open MQTT connections at most", default: "10000" },
  "mqtt-max-packet": { flag: "--mqtt-max-packet BYTES", env: "GATEHOUSE_MQTT_MAX_PACKET", help: "largest MQTT packet accepted", default: "1048576" },
  "opcua-trust-all": { flag: "--opcua-trust-all BOOL", env: "GATEHOUSE_OPCUA_TRUST_ALL", help: "labs only: accept unknown OPC UA client certificates", default: "false" },
  "log-level": { flag: "--log-level L", env: "GATEHOUSE_LOG_LEVEL", help: "debug | info | warn | error", default: "info" },
  "public-url": { flag: "--public-url URL", env: "GATEHOUSE_PUBLIC_URL", help: "base URL shown in the setup link" },
  "session-ttl": { flag: "--session-ttl SECONDS", env: "GATEHOUSE_SESSION_TTL", help: "admin sign-in lifetime", default: "43200" },
};

export const usage = `gatehouse — who may connect to this device (MQTT, OPC UA, HTTP, VRPC)

Usage:
  gatehouse [serve] [options]              run the appliance (default)
  gatehouse admin set-password [--username NAME] [--data-dir DIR]
                                           read a new admin password from stdin
  gatehouse integrations list [--type T] [--json]
  gatehouse integrations add --type T [--username U] [--password-stdin] [--description D] [--json]
  gatehouse integrations remove|enable|disable USERNAME [--json]
  gatehouse integrations import FILE [--json]   CSV (username,type,password,description) or JSON array
  gatehouse version

Options of serve (each also read from its environment variable; flags win):
${Object.values(serveOptions)
  .map((o) => `  ${o.flag.padEnd(26)} ${o.env.padEnd(31)} ${o.help}${o.default ? ` (default ${o.default})` : ""}`)
  .join("\n")}
  ${"".padEnd(26)} ${"GATEHOUSE_ADMIN_PASSWORD".padEnd(31)} creates admin "admin" on first start
  -h, --help                                   this text

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration.
`;

function parsePort(name: string, raw: string): number {
  if (!/^\d+$/.test(raw)) throw new ConfigError(`--${name} must be a port number 0-65535, got "${raw}"`);
  const n = Number(raw);
  if (n > 65535) throw new ConfigError(`--${name} must be a port number 0-65535, got "${raw}"`);
  return n;
}

function parseCount(name: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max) throw new ConfigError(`--${name} must be a whole number ${min}-${max}, got "${raw}"`);
  return n;
}

/** parseServeConfig: flags win over environment, environment over defaults. Throws ConfigError. */
export function parseServeConfig(argv: string[], env: Record<string, string | undefined>): Config {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: Object.fromEntries(Object.keys(serveOptions).map((k) => [k, { type: "string" as const }])),
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const get = (key: string): string | undefined => {
    const spec = serveOptions[key]!;
    const v = values[key] ?? env[spec.env];
    return typeof v === "string" && v !== "" ? v : spec.default;
  };
  const logLevel = get("log-level")!;
  if (!["debug", "info", "warn", "error"].includes(logLevel)) {
    throw new ConfigError(`--log-level must be debug, info, warn or error, got "${logLevel}"`);
  }
  const trustAll = get("opcua-trust-all")!;
  if (!["true", "false"].includes(trustAll)) throw new ConfigError(`--opcua-trust-all must be true or false, got "${trustAll}"`);
  const ttl = get("session-ttl")!;
  if (!/^\d+$/.test(ttl) || Number(ttl) < 60) throw new ConfigError(`--session-ttl must be at least 60 seconds`);
  const publicUrl = get("public-url");
  if (publicUrl !== undefined && !URL.canParse(publicUrl)) throw new ConfigError(`--public-url is not a URL: "${publicUrl}"`);
  const adminPassword = env.GATEHOUSE_ADMIN_PASSWORD || undefined;
  if (adminPassword !== undefined && adminPassword.length < 8) {
    throw new ConfigError("GATEHOUSE_ADMIN_PASSWORD must have at least 8 characters");
  }
  return Object.freeze({
    dataDir: get("data-dir")!,
    bind: get("bind")!,
    httpPort: parsePort("http-port", get("http-port")!),
    mqttPort: get("mqtt-port") === "off" ? null : parsePort("mqtt-port", get("mqtt-port")!),
    opcuaPort: get("opcua-port") === "off" ? null : parsePort("opcua-port", get("opcua-port")!),
    opcuaTrustAll: trustAll === "true",
    mqttMaxConnections: parseCount("mqtt-max-connections", get("mqtt-max-connections")!, 1, 1_000_000),
    mqttMaxPacketBytes: parseCount("mqtt-max-packet", get("mqtt-max-packet")!, 64, 268_435_455),
    logLevel: logLevel as LogLevel,
    adminPassword,
    publicUrl,
    sessionTtlSeconds: Number(ttl),
  });
}

/** dataDirOf: for the offline CLI verbs, which only need the data dir. */
export function dataDirOf(flag: string | undefined, env: Record<string, string | undefined>): string {
  return flag || env.GATEHOUSE_DATA_DIR || "./data";
}
