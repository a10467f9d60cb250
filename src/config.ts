import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseTrustedProxies, type TrustedProxies } from "./lib/client-address.ts";
import type { LogLevel } from "./lib/logger.ts";
import { ConfigError, parseBool, parseCount, parsePortOrOff, type OptionReader, type OptionSpec } from "./lib/options.ts";
import { listenerRegistry } from "./listeners/index.ts";
import type { ListenerModule } from "./listeners/listener.ts";

export { ConfigError } from "./lib/options.ts";

/** ListenerConfig: one enabled listener of the registry with its validated options. */
export interface ListenerConfig {
  readonly module: ListenerModule<unknown>;
  readonly options: unknown;
}

/** Config: everything `serve` needs, validated once; the only reader of argv/env is this file. */
export interface Config {
  readonly dataDir: string;
  readonly bind: string;
  /** the admin page, the JSON API and the HTTP integrations share this port (null: off) */
  readonly httpPort: number | null;
  /** the same over TLS (null: off) */
  readonly httpsPort: number | null;
  /** plain HTTP answers with a redirect to HTTPS */
  readonly httpRedirect: boolean;
  /** PEM files for every TLS listener; absent: a self-signed pair made in the data dir */
  readonly tlsCertFile?: string;
  readonly tlsKeyFile?: string;
  readonly logFormat: "text" | "json";
  readonly logLevel: LogLevel;
  /**
   * The first admin's password (admin `admin`, created on first start only): from a file
   * (`--admin-password-file`, or the systemd credential `admin-password` in $CREDENTIALS_DIRECTORY),
   * else from GATEHOUSE_ADMIN_PASSWORD (env only: flags show up in `ps`; see README for what the
   * environment keeps).
   */
  readonly adminPassword?: string;
  /** where adminPassword came from, for the log (never the password) */
  readonly adminPasswordSource?: string;
  /** Public base URL used in the logged setup link; defaults to http://<bind>:<port>. */
  readonly publicUrl?: string;
  /** Admin session lifetime in seconds. */
  readonly sessionTtlSeconds: number;
  /** peers whose X-Forwarded-For names the client (reverse proxies); none by default */
  readonly trustedProxies: TrustedProxies;
  /** HTTP(S) connections per port past their first request, at most */
  readonly httpMaxConnections: number;
  /** the accept front counts HTTP(S) sockets in the accept pool (off: Bun.serve binds the ports itself) */
  readonly httpAcceptFront: boolean;
  /** sockets of every listener that have not logged in yet, at most (the accept pool) */
  readonly maxPending: number;
  /** seconds a silent socket may wait while the pool is at most half full (less as it fills) */
  readonly pendingTimeoutSeconds: number;
  /** the enabled listeners, in registry order */
  readonly listeners: readonly ListenerConfig[];
  /** what the appliance logs at start about the configuration (deprecated options given) */
  readonly warnings: readonly string[];
}

/** commonOptions: the flags of `serve` that belong to no single listener. */
const commonOptions: Record<string, OptionSpec> = {
  "data-dir": { flag: "--data-dir DIR", env: "GATEHOUSE_DATA_DIR", help: "database, PKI and state", default: "./data" },
  bind: { flag: "--bind ADDR", env: "GATEHOUSE_BIND", help: "address every listener binds to", default: "0.0.0.0" },
  "http-port": { flag: "--http-port N", env: "GATEHOUSE_HTTP_PORT", help: "admin page, JSON API and HTTP integrations (0 = any free port, off = none)", default: "8080" },
  "https-port": { flag: "--https-port N", env: "GATEHOUSE_HTTPS_PORT", help: "the same over TLS (off = none)", default: "8443" },
  "http-redirect": { flag: "--http-redirect BOOL", env: "GATEHOUSE_HTTP_REDIRECT", help: "plain HTTP redirects to HTTPS", default: "false" },
  "tls-cert": { flag: "--tls-cert FILE", env: "GATEHOUSE_TLS_CERT", help: "PEM certificate (chain) for MQTT over TLS and HTTPS; reloaded on SIGHUP" },
  "tls-key": { flag: "--tls-key FILE", env: "GATEHOUSE_TLS_KEY", help: "its PEM private key (without both: self-signed in the data dir)" },
  "log-format": { flag: "--log-format F", env: "GATEHOUSE_LOG_FORMAT", help: "text | json (one object per line)", default: "text" },
  "log-level": { flag: "--log-level L", env: "GATEHOUSE_LOG_LEVEL", help: "debug | info | warn | error", default: "info" },
  "admin-password-file": {
    flag: "--admin-password-file FILE",
    env: "GATEHOUSE_ADMIN_PASSWORD_FILE",
    help: "first start: admin \"admin\" gets the password in FILE (0600; default: systemd credential admin-password)",
  },
  "public-url": { flag: "--public-url URL", env: "GATEHOUSE_PUBLIC_URL", help: "base URL shown in the setup link" },
  "session-ttl": { flag: "--session-ttl SECONDS", env: "GATEHOUSE_SESSION_TTL", help: "admin sign-in lifetime", default: "43200" },
  "trusted-proxies": { flag: "--trusted-proxies LIST", env: "GATEHOUSE_TRUSTED_PROXIES", help: "reverse proxies (ADDR or CIDR, comma-separated) whose X-Forwarded-For names the client; none by default" },
  "http-max-connections": {
    flag: "--http-max-connections N",
    env: "GATEHOUSE_HTTP_MAX_CONNECTIONS",
    help: "HTTP(S) connections per port after their first request (the one quiet longest makes room)",
    default: "2048",
  },
  "http-accept-front": {
    flag: "--http-accept-front BOOL",
    env: "GATEHOUSE_HTTP_ACCEPT_FRONT",
    help: "count HTTP(S) sockets in the accept pool from accept (false: Bun.serve alone, e.g. behind a reverse proxy)",
    default: "true",
  },
  "max-pending": {
    flag: "--max-pending N",
    env: "GATEHOUSE_MAX_PENDING",
    help: "sockets not logged in yet on all ports together (the oldest silent one makes room)",
    default: "2000",
  },
  "pending-timeout": {
    flag: "--pending-timeout SECONDS",
    env: "GATEHOUSE_PENDING_TIMEOUT",
    help: "a silent socket's deadline (TLS handshake, CONNECT, request); shrinks to 2 s as the pool fills",
    default: "10",
  },
  // Names of releases before the shared accept pool: a unit file that sets them still starts.
  "mqtt-max-pending": {
    flag: "--mqtt-max-pending N",
    env: "GATEHOUSE_MQTT_MAX_PENDING",
    help: "deprecated: read as --max-pending",
    deprecated: "--mqtt-max-pending (GATEHOUSE_MQTT_MAX_PENDING) is deprecated: read as --max-pending, which now counts every port",
  },
  "mqtt-max-pending-per-address": {
    flag: "--mqtt-max-pending-per-address N",
    env: "GATEHOUSE_MQTT_MAX_PENDING_PER_ADDRESS",
    help: "deprecated, ignored: an address's share of --max-pending shrinks as the pool fills",
    deprecated:
      "--mqtt-max-pending-per-address (GATEHOUSE_MQTT_MAX_PENDING_PER_ADDRESS) is ignored: an address's share of --max-pending now shrinks as the pool fills",
  },
};

/** serveOptions: every flag of `serve` with its environment twin; `--help` is generated from this. */
export const serveOptions: Record<string, OptionSpec> = Object.assign({}, commonOptions, ...listenerRegistry.map((m) => m.configKeys));

export const usage = `gatehouse — who may connect to this device (MQTT, OPC UA, HTTP, VRPC)

Usage:
  gatehouse [serve] [options]              run the appliance (default)
  gatehouse admin set-password [--username NAME] [--data-dir DIR]
                                           read a new admin password from stdin
  gatehouse integrations list [--type T] [--json]
  gatehouse integrations add --type T [--username U] [--password-stdin] [--description D] [--json]
  gatehouse integrations remove|enable|disable USERNAME [--json]
  gatehouse integrations permissions USERNAME [--publish F,...] [--subscribe F,...]
                                           [--deny-publish F,...] [--deny-subscribe F,...] [--json]
  gatehouse integrations import FILE [--json]   CSV (username,type,password,description) or JSON array
  gatehouse integrations import --mosquitto-passwd FILE [--mosquitto-acl FILE] [--type T]
  gatehouse onboarding open [--minutes N] [--type T ...] | close | list | approve ID [ID ...] [--json]
  gatehouse backup FILE | restore FILE | export [FILE] | import --full FILE   [--data-dir DIR]
  gatehouse version

Options of serve (each also read from its environment variable; flags win):
${Object.values(serveOptions)
  .filter((o) => !o.deprecated)
  .map((o) => `  ${o.flag.padEnd(26)} ${o.env.padEnd(31)} ${o.help}${o.default ? ` (default ${o.default})` : ""}`)
  .join("\n")}
  ${"".padEnd(26)} ${"GATEHOUSE_ADMIN_PASSWORD".padEnd(31)} the same from the environment (prefer the file: see README)
  -h, --help                                   this text

Deprecated names (still accepted, so an old unit file starts; a warning is logged at start):
${Object.values(serveOptions)
  .filter((o) => o.deprecated)
  .map((o) => `  ${o.flag.padEnd(26)} ${o.env.padEnd(31)} ${o.help}`)
  .join("\n")}

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration.
`;

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
  /** given: the value set by flag or environment, if any (no default) */
  const given = (key: string) => {
    const spec = serveOptions[key];
    if (!spec) throw new Error(`option ${key} is not declared`);
    const v = values[key] ?? env[spec.env];
    return typeof v === "string" && v !== "" ? v : undefined;
  };
  const get: OptionReader = (key) => given(key) ?? serveOptions[key]!.default;
  const logLevel = get("log-level")!;
  if (!["debug", "info", "warn", "error"].includes(logLevel)) {
    throw new ConfigError(`--log-level must be debug, info, warn or error, got "${logLevel}"`);
  }
  const tlsCert = get("tls-cert");
  const tlsKey = get("tls-key");
  if ((tlsCert === undefined) !== (tlsKey === undefined)) throw new ConfigError("--tls-cert and --tls-key go together");
  const logFormat = get("log-format")!;
  if (logFormat !== "text" && logFormat !== "json") throw new ConfigError(`--log-format must be text or json, got "${logFormat}"`);
  const publicUrl = get("public-url");
  if (publicUrl !== undefined && !URL.canParse(publicUrl)) throw new ConfigError(`--public-url is not a URL: "${publicUrl}"`);
  const { password: adminPassword, source: adminPasswordSource } = firstAdminPassword(get("admin-password-file"), env);
  const warnings: string[] = [];
  for (const [key, spec] of Object.entries(serveOptions)) if (spec.deprecated && given(key) !== undefined) warnings.push(spec.deprecated);
  const oldMaxPending = given("mqtt-max-pending");
  const maxPending =
    given("max-pending") === undefined && oldMaxPending !== undefined
      ? parseCount("mqtt-max-pending", oldMaxPending, 1, 1_000_000)
      : parseCount("max-pending", get("max-pending")!, 1, 1_000_000);
  const oldPerAddress = given("mqtt-max-pending-per-address");
  if (oldPerAddress !== undefined) parseCount("mqtt-max-pending-per-address", oldPerAddress, 1, 1_000_000);
  const listeners: ListenerConfig[] = [];
  for (const module of listenerRegistry as readonly ListenerModule<unknown>[]) {
    const options = module.parseConfig(get);
    if (options !== null) listeners.push({ module, options });
  }
  return Object.freeze({
    dataDir: get("data-dir")!,
    bind: get("bind")!,
    httpPort: parsePortOrOff("http-port", get("http-port")!),
    httpsPort: parsePortOrOff("https-port", get("https-port")!),
    httpRedirect: parseBool("http-redirect", get("http-redirect")!),
    tlsCertFile: tlsCert,
    tlsKeyFile: tlsKey,
    logFormat: logFormat as "text" | "json",
    logLevel: logLevel as LogLevel,
    adminPassword,
    adminPasswordSource,
    publicUrl,
    sessionTtlSeconds: parseCount("session-ttl", get("session-ttl")!, 60, 10 * 365 * 86400),
    trustedProxies: parseTrustedProxies(get("trusted-proxies")),
    httpMaxConnections: parseCount("http-max-connections", get("http-max-connections")!, 1, 1_000_000),
    httpAcceptFront: parseBool("http-accept-front", get("http-accept-front")!),
    maxPending,
    pendingTimeoutSeconds: parseCount("pending-timeout", get("pending-timeout")!, 1, 300),
    listeners: Object.freeze(listeners),
    warnings: Object.freeze(warnings),
  });
}

/** adminCredentialName: the systemd credential (`LoadCredential=admin-password:FILE`) read from $CREDENTIALS_DIRECTORY. */
export const adminCredentialName = "admin-password";
const maxPasswordFileBytes = 4096;

/**
 * firstAdminPassword: the password for the first admin, from the first of: --admin-password-file /
 * GATEHOUSE_ADMIN_PASSWORD_FILE, the systemd credential `admin-password`, GATEHOUSE_ADMIN_PASSWORD.
 *
 * A file keeps the password out of the process's environment: the kernel keeps the environment a
 * process was started with readable in /proc/<pid>/environ for its whole life (by root and the same
 * user), and `delete process.env.X` does not change that copy. GATEHOUSE_ADMIN_PASSWORD is still taken
 * out of `process.env` (nothing started later inherits it), but it stays in /proc. A file that others
 * may read (any group or other permission bit) is refused: a password it holds is not the admin's
 * alone. The credential is systemd's private copy (mode 0400, readable by the service only).
 */
function firstAdminPassword(file: string | undefined, env: Record<string, string | undefined>): { password?: string; source?: string } {
  const fromEnv = env.GATEHOUSE_ADMIN_PASSWORD || undefined;
  delete env.GATEHOUSE_ADMIN_PASSWORD;
  let path = file;
  let source = file === undefined ? undefined : "--admin-password-file";
  const credentials = env.CREDENTIALS_DIRECTORY;
  if (path === undefined && credentials && existsSync(join(credentials, adminCredentialName))) {
    path = join(credentials, adminCredentialName);
    source = `systemd credential ${adminCredentialName}`;
  }
  if (path !== undefined && fromEnv !== undefined) {
    throw new ConfigError(`GATEHOUSE_ADMIN_PASSWORD and ${source} are both set; keep the file and remove the variable`);
  }
  let password = fromEnv;
  if (path !== undefined) {
    password = readPasswordFile(path, source!, file !== undefined);
    // An empty credential is the unit's `SetCredential=admin-password:` fallback: no password given.
    if (password === undefined) source = undefined;
  } else if (password !== undefined) source = "GATEHOUSE_ADMIN_PASSWORD";
  if (password !== undefined && (password.length < 8 || password.length > 256)) {
    throw new ConfigError(`the admin password from ${source} must have 8 to 256 characters`);
  }
  return { password, source };
}

function readPasswordFile(path: string, source: string, explicit: boolean): string | undefined {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    throw new ConfigError(`${source}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!st.isFile()) throw new ConfigError(`${source}: ${path} is not a regular file`);
  if (explicit && (st.mode & 0o077) !== 0) {
    throw new ConfigError(`${source}: ${path} can be read or written by others (mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}); chmod 600 it`);
  }
  if (st.size > maxPasswordFileBytes) throw new ConfigError(`${source}: ${path} has ${st.size} bytes; a password file has one line`);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(readFileSync(path));
  } catch (err) {
    throw new ConfigError(`${source}: cannot read ${path}: ${err instanceof TypeError ? "not UTF-8 text" : ((err as NodeJS.ErrnoException).code ?? (err as Error).message)}`);
  }
  const password = text.replace(/\r?\n$/, "");
  if (/[\r\n]/.test(password)) throw new ConfigError(`${source}: ${path} has more than one line`);
  if (password === "") {
    if (explicit) throw new ConfigError(`${source}: ${path} is empty`);
    return undefined;
  }
  return password;
}
