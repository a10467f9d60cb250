import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ActivityLog, enterActor } from "../core/activity.ts";
import { CredentialStore } from "../core/credentials.ts";
import { EventBus } from "../core/events.ts";
import { allDefaultPermissions, setDefaultPermissions, type DefaultPermissions } from "../core/settings.ts";
import { integrationTypes, isIntegrationType } from "../core/types.ts";
import { dataDirOf, DataDirError, openDataDir } from "../db/data-dir.ts";
import { embeddedMigrations, loadMigrations } from "../db/migrate.ts";
import { integrations } from "../db/schema.ts";
import { AppError, ValidationError } from "../lib/errors.ts";
import { exitCodes } from "./exit-codes.ts";

/** pidFile: `serve` writes it while it runs; restore refuses to replace a database in use. */
export const pidFileName = "gatehouse.pid";

export function servePid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, pidFileName), "utf8").trim());
    if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
    process.kill(pid, 0); // throws when no such process
    return pid;
  } catch {
    return undefined;
  }
}

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
}

/**
 * backup / restore / export / import --full: the appliance's data, safely.
 * - backup FILE: a consistent copy while the appliance runs (SQLite `VACUUM INTO`, no lock held long);
 * - restore FILE: the appliance stopped; a backup made by a newer release (unknown migrations) is refused;
 * - export [FILE]: integrations with their password hashes and permissions, default permissions and
 *   trusted OPC UA certificates, as one JSON document (stdout without FILE);
 * - import --full FILE: that document into another appliance: every device's credentials work unchanged.
 */
export async function dataCli(verb: string, argv: string[], env: Record<string, string | undefined>): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { "data-dir": { type: "string" }, full: { type: "boolean" } } });
  } catch (err) {
    return fail(verb, (err as Error).message);
  }
  const { values, positionals } = parsed;
  const dataDir = dataDirOf(values["data-dir"], env);
  const file = positionals[0];
  try {
    switch (verb) {
      case "backup": {
        if (!file) return fail(verb, "usage: gatehouse backup FILE");
        if (existsSync(file)) return fail(verb, `${file} exists; choose a new file`);
        const db = openDataDir(dataDir, { busyTimeoutMs: 10_000 });
        try {
          db.$client.run("VACUUM INTO ?", [file]);
        } finally {
          db.$client.close();
        }
        process.stdout.write(`backed up ${join(dataDir, "gatehouse.db")} to ${file} (${statSync(file).size} bytes)\n`);
        return exitCodes.ok;
      }
      case "restore": {
        if (!file || !existsSync(file)) return fail(verb, "usage: gatehouse restore FILE (a file made by gatehouse backup)");
        const pid = servePid(dataDir);
        if (pid) return fail(verb, `the appliance runs (pid ${pid}) on ${dataDir}: stop it first (systemctl stop gatehouse)`);
        const known = new Set(loadMigrations().map((m) => m.hash));
        const backup = new Database(file, { readonly: true });
        let applied: { hash: string }[];
        try {
          applied = backup.query("SELECT hash FROM __drizzle_migrations").all() as { hash: string }[];
          backup.query("SELECT count(*) FROM integrations").get();
        } catch {
          return fail(verb, `${file} is not a Gatehouse backup`);
        } finally {
          backup.close();
        }
        const unknown = applied.filter((m) => !known.has(m.hash));
        if (unknown.length) return fail(verb, `${file} was made by a newer release (${unknown.length} unknown schema change(s)); restore it with that release`);
        mkdirSync(dataDir, { recursive: true, mode: 0o700 });
        for (const suffix of ["", "-wal", "-shm"]) rmSync(join(dataDir, `gatehouse.db${suffix}`), { force: true });
        writeFileSync(join(dataDir, "gatehouse.db"), readFileSync(file), { mode: 0o600 });
        openDataDir(dataDir).$client.close(); // applies this release's newer migrations, if any
        process.stdout.write(`restored ${file} into ${dataDir} (${Object.keys(embeddedMigrations).length} schema changes known)\n`);
        return exitCodes.ok;
      }
      case "export": {
        const db = openDataDir(dataDir);
        try {
          const rows = db.select().from(integrations).all();
          const trusted = join(dataDir, "pki", "trusted", "certs");
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
            trustedCertificates: Object.fromEntries(
              (existsSync(trusted) ? readdirSync(trusted) : []).filter((n) => /\.(pem|der)$/i.test(n)).map((n) => [n, readFileSync(join(trusted, n)).toString("base64")]),
            ),
          };
          const text = JSON.stringify(doc, null, 1) + "\n";
          if (file) {
            writeFileSync(file, text, { mode: 0o600 }); // password hashes: owner only
            process.stderr.write(`exported ${doc.integrations.length} integration(s) and ${Object.keys(doc.trustedCertificates).length} trusted certificate(s) to ${file}\n`);
          } else process.stdout.write(text);
        } finally {
          db.$client.close();
        }
        return exitCodes.ok;
      }
      case "import": {
        if (!values.full || !file) return fail(verb, "usage: gatehouse import --full FILE (made by gatehouse export)");
        let doc: ExportDocument;
        try {
          doc = JSON.parse(readFileSync(file, "utf8"));
        } catch {
          return fail(verb, `${file} is not JSON`);
        }
        if (doc?.format !== "gatehouse-export" || doc.version !== 1 || !Array.isArray(doc.integrations)) return fail(verb, `${file} is not a Gatehouse export`);
        const db = openDataDir(dataDir);
        try {
          const events = new EventBus();
          new ActivityLog(db).follow(events);
          enterActor("cli");
          const store = new CredentialStore(db, events);
          const created = store.adoptMany(
            doc.integrations.map((i) => {
              if (!isIntegrationType(i.type)) throw new ValidationError({ type: `integration ${i.username}: unknown type ${i.type}` });
              return { ...i, type: i.type };
            }),
          );
          for (const t of integrationTypes) if (doc.defaultPermissions?.[t]) setDefaultPermissions(db, t, doc.defaultPermissions[t]);
          const trusted = join(dataDir, "pki", "trusted", "certs");
          const certs = Object.entries(doc.trustedCertificates ?? {}).filter(([n]) => /^[\w.\-\[\]]+\.(pem|der)$/i.test(n));
          if (certs.length) mkdirSync(trusted, { recursive: true, mode: 0o700 });
          for (const [name, b64] of certs) writeFileSync(join(trusted, name), Buffer.from(b64, "base64"));
          process.stdout.write(`imported ${created.length} integration(s) and ${certs.length} trusted certificate(s); every device logs in with its old password\n`);
        } finally {
          db.$client.close();
        }
        return exitCodes.ok;
      }
      default:
        return fail(verb, "unknown verb");
    }
  } catch (err) {
    if (err instanceof AppError || err instanceof DataDirError) return fail(verb, err.message);
    throw err;
  }
}

function fail(verb: string, message: string): number {
  process.stderr.write(`gatehouse ${verb}: ${message}\n`);
  return exitCodes.usage;
}
