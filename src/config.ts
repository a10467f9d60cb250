import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseTrustedProxies, type TrustedProxies } from "./lib/client-address.ts";
import type { LogLevel } from "./lib/logger.ts";
import {
  ConfigError,
  envOf,
  flagOf,
  helpLine,
  option,
  readOptions,
  type Given,
  type OptionSet,
} from "./lib/options.ts";
import type { ConnectorModule } from "./connectors/connector.ts";
import { connectorRegistry } from "./connectors/index.ts";
import { listenerRegistry } from "./listeners/index.ts";
import type { ListenerModule } from "./listeners/listener.ts";

export { ConfigError } from "./lib/options.ts";

/** ListenerConfig: one enabled listener of the registry with its validated options. */
export interface ListenerConfig {
  readonly module: ListenerModule<unknown>;
  readonly options: unknown;
}

/** ConnectorConfig: one enabled connector of the registry with its validated options. */
export interface ConnectorConfig {
  readonly module: ConnectorModule<unknown>;
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
  /** /metrics also has a series per integration for its traffic (off: by type only, a bounded label set) */
  readonly metricsPerIntegration: boolean;
  /** the enabled listeners, in registry order */
  readonly listeners: readonly ListenerConfig[];
  /** the enabled connectors (outbound parts), in registry order */
  readonly connectors: readonly ConnectorConfig[];
  /** what the appliance logs at start about the configuration (deprecated options given) */
  readonly warnings: readonly string[];
}

/** commonOptions: the options of `serve` that belong to no single listener. */
const commonOptions = {
  dataDir: option.text("database, PKI and state", "DIR", "./data"),
  bind: option.text("address every listener binds to", "ADDR", "0.0.0.0"),
  httpPort: option.port("admin page, JSON API and HTTP integrations", "8080"),
  httpsPort: option.port("the same over TLS", "8443"),
  httpRedirect: option.bool("plain HTTP redirects to HTTPS", "false"),
  tlsCert: option.text("PEM certificate (chain) for MQTT over TLS and HTTPS; reloaded on SIGHUP", "FILE"),
  tlsKey: option.text("its PEM private key (without both: self-signed in the data dir)", "FILE"),
  logFormat: option.oneOf("one line per event", ["text", "json"] as const, "text"),
  logLevel: option.oneOf("the least important lines logged", ["debug", "info", "warn", "error"] as const, "info"),
  adminPasswordFile: option.text(
    'first start: admin "admin" gets the password in FILE (0600; default: systemd credential admin-password)',
    "FILE",
  ),
  publicUrl: option.custom("base URL shown in the setup link", "URL", (raw, flag) => {
    if (raw !== undefined && !URL.canParse(raw)) throw new ConfigError(`${flag} is not a URL: "${raw}"`);
    return raw;
  }),
  sessionTtl: option.count("admin sign-in lifetime", "43200", 60, 10 * 365 * 86400, "SECONDS"),
  trustedProxies: option.custom(
    "reverse proxies (ADDR or CIDR, comma-separated) whose X-Forwarded-For names the client; none by default",
    "LIST",
    (raw) => parseTrustedProxies(raw),
  ),
  httpMaxConnections: option.count(
    "HTTP(S) connections per port after their first request (past it, the address holding most gives one up)",
    "2048",
    1,
    1_000_000,
  ),
  httpAcceptFront: option.bool(
    "count HTTP(S) sockets in the accept pool from accept (false: Bun.serve alone, e.g. behind a reverse proxy)",
    "true",
  ),
  maxPending: option.count(
    "sockets not logged in yet on all ports together (the oldest silent one makes room)",
    "2000",
    1,
    1_000_000,
  ),
  metricsPerIntegration: option.bool(
    "/metrics also has each integration's traffic, labelled by username (the 1000 busiest); off: by type only",
    "false",
  ),
  pendingTimeout: option.count(
    "a silent socket's deadline (TLS handshake, CONNECT, request); shrinks to 2 s as the pool fills",
    "10",
    1,
    300,
    "SECONDS",
  ),
  // Names of releases before the shared accept pool: a unit file that sets them still starts.
  mqttMaxPending: option.deprecated(
    option.count("", undefined, 1, 1_000_000),
    "deprecated: read as --max-pending",
    "--mqtt-max-pending (GATEHOUSE_MQTT_MAX_PENDING) is deprecated: read as --max-pending, which now counts every port",
  ),
  mqttMaxPendingPerAddress: option.deprecated(
    option.count("", undefined, 1, 1_000_000),
    "deprecated, ignored: an address's share of --max-pending shrinks as the pool fills",
    "--mqtt-max-pending-per-address (GATEHOUSE_MQTT_MAX_PENDING_PER_ADDRESS) is ignored: an address's share of --max-pending now shrinks as the pool fills",
  ),
} satisfies OptionSet;

/** serveOptions: every option of `serve`, the common ones and each part's; `--help` is generated from this. */
export const serveOptions: OptionSet = Object.assign(
  {},
  commonOptions,
  ...listenerRegistry.map((m) => m.options),
  ...connectorRegistry.map((m) => m.options),
);

/** serveUsage: serve's options for `--help` (cli/usage.ts puts the verbs before them). */
export const serveUsage = `Options of serve (each also read from its environment variable; flags win):
${Object.entries(serveOptions)
  .filter(([, o]) => !o.deprecated)
  .map(([name, o]) => helpLine(name, o))
  .join("\n")}
  GATEHOUSE_ADMIN_PASSWORD (environment only)
      the same from the environment (prefer the file: see README)
  -h, --help
      this text

Deprecated names (still accepted, so an old unit file starts; a warning is logged at start):
${Object.entries(serveOptions)
  .filter(([, o]) => o.deprecated)
  .map(([name, o]) => helpLine(name, o))
  .join("\n")}

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration.
`;

/** parseServeConfig: flags win over environment, environment over defaults. Throws ConfigError. */
export function parseServeConfig(argv: string[], env: Record<string, string | undefined>): Config {
  const names = new Map(Object.keys(serveOptions).map((name) => [flagOf(name).slice(2), name]));
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: Object.fromEntries([...names.keys()].map((flag) => [flag, { type: "string" as const }])),
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const fromFlags = new Map(Object.entries(values).map(([flag, v]) => [names.get(flag)!, v]));
  /** given: the value set by flag or environment, if any (no default) */
  const given: Given = (name) => {
    const v = fromFlags.get(name) ?? env[envOf(name)];
    return typeof v === "string" && v !== "" ? v : undefined;
  };
  const o = readOptions(commonOptions, given);
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined))
    throw new ConfigError("--tls-cert and --tls-key go together");
  const { password: adminPassword, source: adminPasswordSource } = firstAdminPassword(o.adminPasswordFile, env);
  const warnings: string[] = [];
  for (const [name, spec] of Object.entries(serveOptions))
    if (spec.deprecated && given(name) !== undefined) warnings.push(spec.deprecated);
  // the old name counts only when the new one is not given
  const maxPending =
    given("maxPending") === undefined && o.mqttMaxPending !== undefined ? o.mqttMaxPending : o.maxPending;
  const listeners: ListenerConfig[] = [];
  for (const module of listenerRegistry as readonly ListenerModule<unknown>[]) {
    const options = module.parseConfig(readOptions(module.options, given));
    if (options !== null) listeners.push({ module, options });
  }
  const connectors: ConnectorConfig[] = [];
  for (const module of connectorRegistry as readonly ConnectorModule<unknown>[]) {
    const options = module.parseConfig(readOptions(module.options, given));
    if (options !== null) connectors.push({ module, options });
  }
  return Object.freeze({
    dataDir: o.dataDir,
    bind: o.bind,
    httpPort: o.httpPort,
    httpsPort: o.httpsPort,
    httpRedirect: o.httpRedirect,
    tlsCertFile: o.tlsCert,
    tlsKeyFile: o.tlsKey,
    logFormat: o.logFormat,
    logLevel: o.logLevel,
    adminPassword,
    adminPasswordSource,
    publicUrl: o.publicUrl,
    sessionTtlSeconds: o.sessionTtl,
    trustedProxies: o.trustedProxies,
    httpMaxConnections: o.httpMaxConnections,
    httpAcceptFront: o.httpAcceptFront,
    maxPending,
    pendingTimeoutSeconds: o.pendingTimeout,
    metricsPerIntegration: o.metricsPerIntegration,
    listeners: Object.freeze(listeners),
    connectors: Object.freeze(connectors),
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
function firstAdminPassword(
  file: string | undefined,
  env: Record<string, string | undefined>,
): { password?: string; source?: string } {
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
    throw new ConfigError(
      `${source}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  if (!st.isFile()) throw new ConfigError(`${source}: ${path} is not a regular file`);
  if (explicit && (st.mode & 0o077) !== 0) {
    throw new ConfigError(
      `${source}: ${path} can be read or written by others (mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}); chmod 600 it`,
    );
  }
  if (st.size > maxPasswordFileBytes)
    throw new ConfigError(`${source}: ${path} has ${st.size} bytes; a password file has one line`);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(readFileSync(path));
  } catch (err) {
    throw new ConfigError(
      `${source}: cannot read ${path}: ${err instanceof TypeError ? "not UTF-8 text" : ((err as NodeJS.ErrnoException).code ?? (err as Error).message)}`,
    );
  }
  const password = text.replace(/\r?\n$/, "");
  if (/[\r\n]/.test(password)) throw new ConfigError(`${source}: ${path} has more than one line`);
  if (password === "") {
    if (explicit) throw new ConfigError(`${source}: ${path} is empty`);
    return undefined;
  }
  return password;
}
