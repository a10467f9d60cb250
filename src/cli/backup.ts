import { closeSync, existsSync, mkdirSync, rmSync, statSync } from "node:fs";
import { closeDatabase } from "../db/client.ts";
import { join } from "node:path";
import { ActivityLog, enterActor } from "../core/activity.ts";
import { CredentialStore, type AdoptedIntegration } from "../core/credentials.ts";
import { EventBus } from "../core/events.ts";
import { createCore } from "../core/index.ts";
import {
  allDefaultPermissions,
  defaultPermissionsProblems,
  setDefaultPermissions,
  type DefaultPermissions,
} from "../core/settings.ts";
import { integrationTypes, isIntegrationType } from "../core/types.ts";
import {
  dataDirOf,
  DataDirError,
  type DataDirLock,
  existingDataDir,
  lockDataDir,
  openExistingDataDir,
  removeStaleTemps,
} from "../db/data-dir.ts";
import { restoreDatabase, RestoreRefused } from "../db/restore.ts";
import { integrations } from "../db/schema.ts";
import { AppError, ValidationError } from "../lib/errors.ts";
import {
  assertNewTarget,
  assertReplaceableTarget,
  createPrivateFile,
  fsyncPath,
  publishFile,
  readBounded,
  TargetError,
  tempPathBeside,
  writePrivateFile,
} from "../lib/files.ts";
import { silentLogger } from "../lib/logger.ts";
import { outboxFileName } from "../connectors/uplink/outbox.ts";
import { secretKeyFile } from "../connectors/uplink/secrets.ts";
import { parseUplinkExport, type UplinkExport, UplinkStore } from "../connectors/uplink/store.ts";
import { dataDirExit, usageError, verbArgs } from "./args.ts";
import { exitCodes } from "./exit-codes.ts";
import { saidText } from "./output.ts";
import { maxCertificateBytes, readTrustedCertificates, trustedPath } from "../core/export.ts";

interface ExportDocument {
  format: "gatehouse-export";
  version: 1;
  exportedAt: string;
  integrations: {
    type: string;
    username: string;
    description: string;
    active: boolean;
    passwordHash: string;
    publishAcl: string[];
    subscribeAcl: string[];
    denyPublishAcl: string[];
    denySubscribeAcl: string[];
  }[];
  defaultPermissions: Record<string, DefaultPermissions>;
  /** trusted OPC UA client application certificates: file name -> base64 */
  trustedCertificates: Record<string, string>;
  /** uplinks (their passwords and client keys only with `export --full`) */
  uplinks?: UplinkExport[];
}

/**
 * backup / restore / export / import --full: the appliance's data, safely.
 * - backup FILE: a consistent copy while the appliance runs (SQLite `VACUUM INTO`, no lock held long);
 * - restore FILE: the appliance stopped; the file is hostile until `db/restore.ts` has checked it (and a
 *   newer release's backup is refused); a refusal changes nothing and exits 2;
 * - export [--full] [FILE]: integrations with their password hashes and permissions, default permissions,
 *   trusted OPC UA certificates and uplinks, as one JSON document (stdout without FILE); an uplink's
 *   password and client key only with --full (they are credentials Gatehouse presents, not hashes);
 * - import --full FILE: that document into another appliance: every device's credentials work unchanged;
 *   every field is checked before anything is written (`parseExport`).
 * Backups and exports hold hashes: they are 0600 from creation and appear only when complete (lib/files.ts).
 */
export async function dataCli(verb: string, argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const args = verbArgs(verb, argv, { full: { type: "boolean" } }, { json: false, positionals: 1 });
  if (typeof args === "number") return args;
  const { values, positionals } = args;
  const dataDir = dataDirOf(values["data-dir"], env);
  const file = positionals[0];
  try {
    switch (verb) {
      case "backup": {
        if (!file) return fail(verb, "usage: gatehouse backup FILE");
        existingDataDir(dataDir); // refused before a temp file is made beside FILE
        assertNewTarget(file);
        // VACUUM INTO writes into an existing empty file as well: the temp file is ours, 0600, before
        // SQLite writes a byte of hashes into it; it gets the backup's name only once complete.
        const temp = tempPathBeside(file);
        closeSync(createPrivateFile(temp));
        try {
          const db = openExistingDataDir(dataDir, { busyTimeoutMs: 10_000 });
          try {
            db.$client.run("VACUUM INTO ?", [temp]);
          } finally {
            closeDatabase(db);
          }
          fsyncPath(temp);
          publishFile(temp, file, { replace: false });
        } finally {
          rmSync(temp, { force: true });
        }
        process.stdout.write(
          `backed up ${join(dataDir, "gatehouse.db")} to ${saidText(file)} (${statSync(file).size} bytes)\n`,
        );
        // broker.db is left out on purpose: message state restored later would be stale (README: Backup)
        if (existsSync(join(dataDir, "broker.db")))
          process.stdout.write(
            "not included: broker.db (the MQTT broker's retained messages, persistent sessions and queues)\n",
          );
        // the same for the uplinks' queue; their sealed secrets open only with this data dir's key file
        if (existsSync(join(dataDir, outboxFileName)))
          process.stdout.write(`not included: ${outboxFileName} (what the uplinks have not forwarded yet)\n`);
        if (existsSync(join(dataDir, secretKeyFile)))
          process.stdout.write(
            `not included: ${secretKeyFile} (restored elsewhere, the uplinks' passwords and client keys must be entered again)\n`,
          );
        return exitCodes.ok;
      }
      case "restore": {
        if (!file) return fail(verb, "usage: gatehouse restore FILE (a file made by gatehouse backup)");
        existingDataDir(dataDir);
        // The data dir to itself: refused while an appliance runs on it (or starts: it takes the lock
        // before it opens the database), or another restore or import --full works on it.
        const lock = lockDataDir(dataDir);
        let result;
        try {
          // Loaded here only: the pages' views are needed by no other verb of this file.
          const { renderProbe } = await import("../app.ts");
          removeStaleTemps(dataDir); // an interrupted restore's private copy
          // The probe: the core loads everything on the checked, migrated copy, as `serve` would, and
          // renders what the pages show (a value of the wrong kind in a row fails here, not on the page).
          result = restoreDatabase(dataDir, file, (db) => {
            const core = createCore(db, silentLogger);
            try {
              renderProbe(core);
            } finally {
              core.stop();
            }
          });
        } catch (err) {
          if (err instanceof RestoreRefused) return fail(verb, `${file} refused, nothing changed: ${err.message}`);
          throw err;
        } finally {
          lock.release();
        }
        const migrated =
          result.level < result.latest ? `, migrated from schema ${result.level} to ${result.latest}` : "";
        const kept = result.previous
          ? `; the database it replaced is kept as ${result.previous} until the appliance has started on this one`
          : "";
        process.stdout.write(`restored ${saidText(file)} into ${saidText(dataDir)} (checked${migrated})${kept}\n`);
        return exitCodes.ok;
      }
      case "export": {
        const db = openExistingDataDir(dataDir);
        try {
          const rows = db.select().from(integrations).all();
          const { certificates, skipped } = readTrustedCertificates(dataDir);
          const doc: ExportDocument = {
            format: "gatehouse-export",
            version: 1,
            exportedAt: new Date().toISOString(),
            integrations: rows.map((r) => ({
              type: r.type,
              username: r.username,
              description: r.description,
              active: r.active,
              passwordHash: r.passwordHash,
              publishAcl: JSON.parse(r.publishAcl),
              subscribeAcl: JSON.parse(r.subscribeAcl),
              denyPublishAcl: JSON.parse(r.denyPublishAcl),
              denySubscribeAcl: JSON.parse(r.denySubscribeAcl),
            })),
            defaultPermissions: allDefaultPermissions(db),
            trustedCertificates: certificates,
            uplinks: new UplinkStore(db, dataDir).exportAll(values.full === true),
          };
          for (const s of skipped) process.stderr.write(`gatehouse export: skipped ${saidText(s)}\n`);
          const text = `${JSON.stringify(doc, null, 1)}\n`;
          if (file && file !== "-") {
            writePrivateFile(file, text, { replace: true }); // password hashes: 0600 from the first byte
            process.stderr.write(
              `exported ${doc.integrations.length} integration(s) and ${Object.keys(doc.trustedCertificates).length} trusted certificate(s) to ${saidText(file)}\n`,
            );
          } else process.stdout.write(text);
        } finally {
          closeDatabase(db);
        }
        return exitCodes.ok;
      }
      case "import": {
        if (!values.full || !file) return fail(verb, "usage: gatehouse import --full FILE (made by gatehouse export)");
        existingDataDir(dataDir);
        let doc: ExportDocument;
        let certs: [string, Buffer][];
        try {
          ({ doc, certs } = parseExport(readBounded(file, maxExportBytes), file));
        } catch (err) {
          if (err instanceof TargetError || err instanceof ValidationError)
            return fail(verb, `${file} refused, nothing imported: ${err.message}`);
          if ((err as NodeJS.ErrnoException).code)
            return fail(verb, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code}`);
          throw err;
        }
        // The trusted certificates are files the running OPC UA listener reads: the data dir to itself.
        const lock: DataDirLock = lockDataDir(dataDir);
        try {
          return importFull(verb, dataDir, file, doc, certs);
        } finally {
          lock.release();
        }
      }
      default:
        return fail(verb, "unknown verb");
    }
  } catch (err) {
    if (err instanceof DataDirError) return usageError(verb, err.message, dataDirExit(err));
    if (err instanceof AppError || err instanceof TargetError) return fail(verb, err.message);
    throw err;
  }
}

/**
 * importFull: the checked export into the data dir (its lock held). Everything that could refuse is
 * asked before anything is written: every certificate's target must be absent or a regular file. The
 * integrations, their activity rows and the default permissions are one transaction; certificates are
 * written beside their final names first and renamed only after it committed, so a refusal leaves
 * neither.
 */
function importFull(
  verb: string,
  dataDir: string,
  file: string,
  doc: ExportDocument,
  certs: [string, Buffer][],
): number {
  const trusted = trustedPath(dataDir);
  for (const [name] of certs) assertReplaceableTarget(join(trusted.path, name));
  const db = openExistingDataDir(dataDir);
  const staged: [string, string][] = [];
  let madeFolder: string | undefined;
  let done = false;
  try {
    if (certs.length && !trusted.exists) madeFolder = mkdirSync(trusted.path, { recursive: true, mode: 0o700 });
    for (const [name, bytes] of certs) {
      const temp = tempPathBeside(join(trusted.path, name));
      writePrivateFile(temp, bytes, { replace: false });
      staged.push([temp, join(trusted.path, name)]);
    }
    const events = new EventBus();
    new ActivityLog(db).follow(events);
    enterActor("cli");
    const store = new CredentialStore(db, events);
    const uplinks = new UplinkStore(db, dataDir, new ActivityLog(db));
    let created;
    try {
      uplinks.checkImport(doc.uplinks ?? []);
      created = db.$client.transaction(() => {
        const made = store.adoptMany(doc.integrations as AdoptedIntegration[]);
        // Checked by parseExport: these writes can fail only on I/O.
        for (const t of integrationTypes)
          if (doc.defaultPermissions[t]) setDefaultPermissions(db, t, doc.defaultPermissions[t]);
        uplinks.importAll(doc.uplinks ?? []);
        return made;
      })();
    } catch (err) {
      if (err instanceof AppError) return fail(verb, `${file} refused, nothing imported: ${err.message}`);
      throw err;
    }
    for (const [temp, final] of staged.splice(0)) publishFile(temp, final, { replace: true });
    done = true;
    process.stdout.write(
      `imported ${created.length} integration(s), ${certs.length} trusted certificate(s) and ${doc.uplinks?.length ?? 0} uplink(s); every device logs in with its old password\n`,
    );
    return exitCodes.ok;
  } finally {
    for (const [temp] of staged) rmSync(temp, { force: true });
    if (!done && madeFolder) rmSync(madeFolder, { recursive: true, force: true }); // only what this import created
    closeDatabase(db);
  }
}

/** maxExportBytes: an export larger than this is refused unread (256 MiB: several hundred thousand integrations). */
export const maxExportBytes = 256 * 1024 * 1024;
const maxCertificates = 1000;
const aclKeys = ["publishAcl", "subscribeAcl", "denyPublishAcl", "denySubscribeAcl"] as const;

/**
 * parseExport: an export is a file from outside: its shape is checked field by field before anything
 * is written (the integrations' names, hashes and permissions are checked again by adoptMany, hash costs
 * included); every problem is listed, and any refuses the whole file.
 */
export function parseExport(bytes: Buffer, file: string): { doc: ExportDocument; certs: [string, Buffer][] } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new ValidationError({ file: `${file} is not UTF-8 JSON` });
  }
  const doc = parsed as Partial<ExportDocument> | null;
  if (
    typeof doc !== "object" ||
    doc === null ||
    doc.format !== "gatehouse-export" ||
    doc.version !== 1 ||
    !Array.isArray(doc.integrations)
  ) {
    throw new ValidationError({ file: "not a Gatehouse export (format gatehouse-export, version 1)" });
  }
  const problems: string[] = [];
  const isStrings = (v: unknown) => Array.isArray(v) && v.length <= 1000 && v.every((x) => typeof x === "string");
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  for (const [i, e] of (doc.integrations as unknown[]).entries()) {
    const at = `integration ${i + 1}`;
    if (!isObject(e)) {
      problems.push(`${at}: not an object`);
      continue;
    }
    if (!isIntegrationType(e.type)) problems.push(`${at}: type must be one of ${integrationTypes.join(", ")}`);
    if (typeof e.username !== "string") problems.push(`${at}: username must be a string`);
    if (typeof e.passwordHash !== "string") problems.push(`${at}: passwordHash must be a string`);
    if (e.description !== undefined && typeof e.description !== "string")
      problems.push(`${at}: description must be a string`);
    if (e.active !== undefined && typeof e.active !== "boolean") problems.push(`${at}: active must be true or false`);
    for (const k of aclKeys)
      if (e[k] !== undefined && !isStrings(e[k]))
        problems.push(`${at}: ${k} must be a list of at most 1000 topic filters`);
  }
  const defaults = doc.defaultPermissions ?? {};
  if (!isObject(defaults)) problems.push("defaultPermissions must be an object");
  else {
    for (const [type, p] of Object.entries(defaults)) {
      if (!isIntegrationType(type))
        problems.push(`defaultPermissions: unknown type ${JSON.stringify(type.slice(0, 32))}`);
      else
        problems.push(
          ...Object.entries(defaultPermissionsProblems(type, p as DefaultPermissions)).map(
            ([k, m]) => `defaultPermissions ${k}: ${m}`,
          ),
        );
    }
  }
  const certs: [string, Buffer][] = [];
  const trusted = doc.trustedCertificates ?? {};
  if (!isObject(trusted)) problems.push("trustedCertificates must be an object");
  else {
    const entries = Object.entries(trusted);
    if (entries.length > maxCertificates)
      problems.push(`trustedCertificates: ${entries.length} certificates, at most ${maxCertificates}`);
    for (const [name, b64] of entries.slice(0, maxCertificates)) {
      const at = `trusted certificate ${JSON.stringify(name.slice(0, 64))}`;
      if (!/^[\w\-[\]][\w.\-[\]]{0,200}\.(pem|der)$/i.test(name))
        problems.push(`${at}: the name must end in .pem or .der and hold only letters, digits and . - _ [ ]`);
      const bytes =
        typeof b64 === "string" && /^[A-Za-z0-9+/]*={0,2}$/.test(b64) ? Buffer.from(b64, "base64") : undefined;
      if (!bytes || bytes.toString("base64") !== b64 || bytes.length === 0) problems.push(`${at}: not base64`);
      else if (bytes.length > maxCertificateBytes)
        problems.push(`${at}: ${bytes.length} bytes, at most ${maxCertificateBytes}`);
      else certs.push([name, bytes]);
    }
  }
  const uplinks = parseUplinkExport(doc.uplinks);
  problems.push(...uplinks.problems);
  if (problems.length) {
    const more = problems.length > 50 ? `; and ${problems.length - 50} more` : "";
    throw new ValidationError({ file: `${problems.length} problem(s): ${problems.slice(0, 50).join("; ")}${more}` });
  }
  return {
    doc: {
      ...(doc as ExportDocument),
      defaultPermissions: defaults as Record<string, DefaultPermissions>,
      trustedCertificates: trusted as Record<string, string>,
      uplinks: uplinks.items,
    },
    certs,
  };
}

const fail = (verb: string, message: string) => usageError(verb, message);
