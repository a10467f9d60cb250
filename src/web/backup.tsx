import { closeSync, readdirSync, readlinkSync, realpathSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { Elysia } from "elysia";
import type { Core } from "../core/index.ts";
import { snapshotExport } from "../core/export.ts";
import { AppError } from "../lib/errors.ts";
import { formFields } from "../lib/bodies.ts";
import { createPrivateFile } from "../lib/files.ts";
import { field, htmlResponse } from "../lib/http.ts";
import { randomToken } from "../lib/ids.ts";
import { BackupPage } from "../../views/pages/backup.tsx";
import { adminOf, isReadOnly } from "./auth.tsx";

/** maxDownloads: backups downloading at once; each holds a copy of the database on disk until sent. */
export const maxDownloads = 2;
/** downloadPrefix: the temp copy's name in the data dir (unlinked as soon as the server holds it open). */
const downloadPrefix = ".gatehouse.db.download-";

/** stamp: a file name's time, UTC, `20261206-043000`. */
const stamp = () => new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);

/**
 * openCopies: the download copies this process holds open, by name, read from /proc/self/fd: the one
 * measure of "copies on disk" that stays true whoever holds the descriptor (Bun.serve, once it sends the
 * file) and however the download ended (sent, aborted, the connection reset). Linux only, like the appliance;
 * one readlink per open descriptor, paid only when an admin asks for a backup.
 */
function openCopies(dataDir: string): Set<string> {
  const names = new Set<string>();
  const prefix = join(dataDir, downloadPrefix);
  for (const fd of readdirSync("/proc/self/fd")) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // closed while listed
    }
    if (target.startsWith(prefix)) names.add(target.replace(/ \(deleted\)$/, ""));
  }
  return names;
}

/**
 * backupPages: Settings → Backup. The database backup is `gatehouse backup`'s: SQLite `VACUUM INTO` a
 * temp file created 0600 in the data dir (before SQLite writes a byte of hashes), sent as a file body
 * (so with its Content-Length) and unlinked as soon as the server holds it open (the descriptor keeps
 * the bytes until the download ends; nothing is left behind if the client or the appliance goes away).
 * The JSON export is `gatehouse export`'s document, made row by row (core/export.ts). Both are POST forms (CSRF token). A read-only admin gets the export
 * without secrets only: a backup holds password hashes and TOTP keys.
 */
export function backupPages(core: Core) {
  const shownDir = dirname(core.db.$client.filename);
  // the real path: /proc/self/fd names files by it
  const dataDir = realpathSync(shownDir);
  /** copies written and not unlinked yet (named in the data dir meanwhile) */
  const handingOff = new Set<string>();
  /**
   * handOff: unlinks the copy once the server holds it open: Bun.serve opens a file body when it takes
   * the response, which reaches it through promise reactions only (microtasks), so by the next timer it
   * has the file open (or has already sent a small one whole and closed it); from then on its descriptor
   * keeps the bytes and nothing stays behind. Had it not opened it yet, the download would fail (file
   * not found): never a wrong file. test/web/backup-download.test.ts holds both sizes.
   */
  const handOff = (temp: string) => {
    handingOff.add(temp);
    setTimeout(() => {
      handingOff.delete(temp);
      rmSync(temp, { force: true });
    }, 0);
  };
  const page = (request: Request, errors?: Record<string, string>) => (
    <BackupPage admin={adminOf(request)} dataDir={shownDir} errors={errors} />
  );
  return new Elysia({ name: "backup-pages" })
    .get("/settings/backup", ({ request }) => page(request))
    .post(
      "/settings/backup/database",
      ({ request }) => {
        if (isReadOnly(request)) throw new AppError("forbidden", "read-only admins cannot download backups");
        const held = openCopies(dataDir);
        for (const name of handingOff) held.add(name);
        if (held.size >= maxDownloads)
          throw new AppError("rate_limited", `${maxDownloads} backups are downloading; try again when one is done`);
        // A copy left by an appliance that died before handing it off is stale; one open or being handed off is not.
        for (const name of readdirSync(dataDir))
          if (name.startsWith(downloadPrefix) && !held.has(join(dataDir, name)))
            rmSync(join(dataDir, name), { force: true });
        const temp = join(
          dataDir,
          `${downloadPrefix}${randomToken()
            .slice(0, 16)
            .replace(/[^A-Za-z0-9]/g, "x")}`,
        );
        closeSync(createPrivateFile(temp));
        try {
          core.db.$client.run("VACUUM INTO ?", [temp]);
        } catch (err) {
          rmSync(temp, { force: true });
          throw err;
        }
        const size = statSync(temp).size;
        handOff(temp);
        core.activity.record("backup.downloaded", "", `database backup, ${size} bytes`);
        // A file body is the one Bun.serve sends with its Content-Length (a stream goes chunked, whatever
        // header it carries: oven-sh/bun#10507); the server opens it itself and closes it when done.
        return new Response(Bun.file(temp), {
          headers: {
            "content-type": "application/vnd.sqlite3",
            "content-disposition": `attachment; filename="gatehouse-${stamp()}.db"`,
            "cache-control": "no-store",
          },
        });
      },
      { body: formFields() },
    )
    .post(
      "/settings/backup/export",
      ({ request, body }) => {
        const secrets = field(body, "secrets") === "1";
        if (secrets && isReadOnly(request))
          throw new AppError("forbidden", "read-only admins cannot export password hashes");
        if (secrets && (field(body, "confirm") ?? "").trim() !== "include hashes")
          return htmlResponse(page(request, { confirm: 'type "include hashes" to include the password hashes' }), 400);
        core.activity.record("backup.exported", "", secrets ? "JSON export with password hashes" : "JSON export");
        const chunks = snapshotExport(core.db.$client.filename, shownDir, secrets);
        const encoder = new TextEncoder();
        const stream = new ReadableStream<Uint8Array>({
          pull(controller) {
            const next = chunks.next();
            if (next.done) controller.close();
            else controller.enqueue(encoder.encode(next.value));
          },
          cancel() {
            chunks.return(undefined);
          },
        });
        return new Response(stream, {
          headers: {
            "content-type": "application/json; charset=utf-8",
            "content-disposition": `attachment; filename="gatehouse-export-${stamp()}.json"`,
            "cache-control": "no-store",
          },
        });
      },
      { body: formFields("secrets", "confirm") },
    );
}
