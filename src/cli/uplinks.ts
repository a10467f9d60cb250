import { ActivityLog, enterActor } from "../core/activity.ts";
import { closeDatabase } from "../db/client.ts";
import { DataDirError, diskFull, isSystemFailure, servePid } from "../db/data-dir.ts";
import { readStatuses } from "../connectors/uplink/status-file.ts";
import { type UplinkInput, UplinkStore, type UplinkView } from "../connectors/uplink/store.ts";
import type { UplinkStatus } from "../connectors/uplink/uplink.ts";
import { AppError, ValidationError } from "../lib/errors.ts";
import { readBounded, TargetError } from "../lib/files.ts";
import { dataVerbArgs, usageError } from "./args.ts";
import { exitCodes } from "./exit-codes.ts";
import { oneLine, printable } from "./output.ts";
import { readSecretLine } from "./stdin.ts";
import { asked, verbLines } from "./usage.ts";

/** shown: an uplink for `list` (never its password or client key: only whether one is stored) */
const shown = (u: UplinkView) => ({
  name: u.name,
  enabled: u.enabled,
  urls: u.urls,
  username: u.username,
  passwordSet: u.passwordSet,
  clientId: u.clientId,
  protocol: u.protocol,
  forward: u.forward,
  remotePrefix: u.remotePrefix,
  subscribe: u.subscribe,
  localPrefix: u.localPrefix,
  qos: u.qos,
  inflight: u.inflight,
  inventory: u.inventory,
  tls: { ca: u.ca !== null, clientCert: u.clientCert !== null, clientKey: u.clientKeySet },
});

function statusLine(s: UplinkStatus): string {
  const state = !s.enabled ? "disabled" : s.connected ? `connected ${printable(s.url ?? "")}` : "disconnected";
  const oldest = s.queued ? `, oldest ${s.oldestQueuedAgeS} s` : "";
  // an upstream's words (a refusal's reason string) or a file's: never acted on by the terminal
  const error = s.lastError ? `\terror: ${printable(s.lastError)}` : "";
  return `${printable(s.name)}\t${state}\tqueued ${s.queued} (${s.queuedBytes} bytes${oldest})\tforwarded ${s.forwarded}\tdropped ${s.dropped}\trefused ${s.refused ?? 0}\tresent ${s.resent}${error}`;
}

/**
 * uplinksCli: the uplinks in the data dir, whether the appliance runs or not: it follows a change within
 * a second (its watch of the database); `status` reads what the running appliance writes every second,
 * or what its outbox holds when it is stopped.
 */
export async function uplinksCli(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const [verb, ...rest] = argv;
  const args = dataVerbArgs(
    "uplinks",
    asked(verb) ? argv : rest,
    env,
    {
      url: { type: "string" },
      username: { type: "string" },
      "password-stdin": { type: "boolean" },
      ca: { type: "string" },
      "client-cert": { type: "string" },
      "client-key": { type: "string" },
      "client-id": { type: "string" },
      protocol: { type: "string" },
      forward: { type: "string" },
      "remote-prefix": { type: "string" },
      subscribe: { type: "string" },
      "local-prefix": { type: "string" },
      qos: { type: "string" },
      inflight: { type: "string" },
      inventory: { type: "boolean" },
    },
    {
      positionals: ({ add: 1, list: 0, status: 1, enable: 1, disable: 1, remove: 1 } as Record<string, number>)[
        verb ?? ""
      ],
    },
  );
  if (typeof args === "number") return args;
  // Like every other verb: an existing data dir (never made here), without its lock (the running
  // appliance follows the change), its files opened without following a link; its real path from here on.
  const { values, positionals, out, db, dataDir } = args;
  enterActor("cli"); // what the CLI changes is in the activity log, by "cli"
  const store = new UplinkStore(db, dataDir, new ActivityLog(db));
  const close = () => closeDatabase(db);
  const name = () => {
    const n = positionals[0];
    if (!n) throw new ValidationError({ name: `name the uplink: gatehouse uplinks ${verb} NAME` });
    return n;
  };
  const list = (v: string | undefined) => (v === undefined ? undefined : v.split(/[\s,]+/).filter(Boolean));
  const file = (path: string | undefined, field: string) => {
    if (path === undefined) return undefined;
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(readBounded(path, 64 * 1024));
    } catch (err) {
      throw new ValidationError({
        [field]: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      });
    }
  };
  const number = (v: string | undefined, field: string) => {
    if (v === undefined) return undefined;
    if (!/^\d{1,6}$/.test(v)) throw new ValidationError({ [field]: `--${field} must be a number` });
    return Number(v);
  };

  try {
    switch (verb) {
      case "add": {
        const input: UplinkInput = {
          name: name(),
          urls: list(values.url) ?? [],
          username: values.username,
          password: values["password-stdin"] ? await readSecretLine("Upstream password: ") : undefined,
          ca: file(values.ca, "ca"),
          clientCert: file(values["client-cert"], "clientCert"),
          clientKey: file(values["client-key"], "clientKey"),
          clientId: values["client-id"],
          protocol: number(values.protocol, "protocol"),
          forward: list(values.forward) ?? [],
          remotePrefix: values["remote-prefix"],
          subscribe: list(values.subscribe),
          localPrefix: values["local-prefix"],
          qos: number(values.qos, "qos"),
          inflight: number(values.inflight, "inflight"),
          inventory: values.inventory === true,
        };
        const u = store.create(input);
        out(
          shown(u),
          `added uplink ${u.name} to ${u.urls.join(", ")} (the running appliance connects within a second)`,
        );
        return exitCodes.ok;
      }
      case "list": {
        const all = store.list();
        out(
          all.map(shown),
          all.length === 0
            ? "no uplinks"
            : all
                .map(
                  (u) =>
                    // each value as text: a tab or line break in a filter would forge a column or a row
                    `${printable(u.name)}\t${u.enabled ? "enabled" : "disabled"}\t${printable(u.urls.join(","))}\tforward ${printable(u.forward.join(","))}\tQoS ${u.qos}`,
                )
                .join("\n"),
        );
        return exitCodes.ok;
      }
      case "status": {
        const wanted = positionals[0];
        const uplinks = wanted ? [store.get(wanted)] : store.list();
        const statuses = readStatuses(dataDir, uplinks, servePid(dataDir) !== undefined);
        if (wanted) out(statuses[0], statusLine(statuses[0]!));
        else out(statuses, statuses.length === 0 ? "no uplinks" : statuses.map(statusLine).join("\n"));
        return exitCodes.ok;
      }
      case "enable":
      case "disable": {
        const u = store.setEnabled(name(), verb === "enable");
        out(shown(u), `${verb}d ${u.name}`);
        return exitCodes.ok;
      }
      case "remove": {
        const u = store.remove(name());
        out(shown(u), `removed ${u.name} (the running appliance deletes its queue)`);
        return exitCodes.ok;
      }
      default:
        return fail(`unknown verb "${verb ?? ""}"\n${verbLines("uplinks")}`, exitCodes.usage);
    }
  } catch (err) {
    if (err instanceof AppError || err instanceof DataDirError || err instanceof TargetError)
      return fail(err.message, exitCodes.usage);
    // the outbox on a (nearly) full disk: said so, a failure of the system (exit 1) as for the database
    if (isSystemFailure(err)) {
      const full = diskFull(err, dataDir);
      return fail(full ? `${oneLine(err)} (${full})` : oneLine(err), exitCodes.failure);
    }
    throw err;
  } finally {
    close();
  }
}

const fail = (message: string, code: number) => usageError("uplinks", message, code);
