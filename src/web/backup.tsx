import { closeSync, openSync, readdirSync, readSync, rmSync, fstatSync } from "node:fs";
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

/** maxDownloads: backups streaming at once; each holds an unlinked copy of the database on disk until sent. */
export const maxDownloads = 2;
/** downloadPrefix: the temp copy's name in the data dir (unlinked as soon as it is open). */
const downloadPrefix = ".gatehouse.db.download-";
const chunkBytes = 64 * 1024;

/** stamp: a file name's time, UTC, `20261206-043000`. */
const stamp = () => new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);

/**
 * streamFd: a file descriptor's bytes as a response body, read 64 KB per pull (never whole in memory);
 * the descriptor is closed at the end or when the client goes away.
 */
function streamFd(fd: number, onClose: () => void): ReadableStream<Uint8Array> {
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    closeSync(fd);
    onClose();
  };
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const buf = Buffer.allocUnsafe(chunkBytes);
      const n = readSync(fd, buf, 0, chunkBytes, null);
      if (n === 0) {
        close();
        controller.close();
      } else controller.enqueue(buf.subarray(0, n));
    },
    cancel: close,
  });
}

/**
 * backupPages: Settings → Backup. The database backup is `gatehouse backup`'s: SQLite `VACUUM INTO` a
 * temp file created 0600 in the data dir (before SQLite writes a byte of hashes), opened, unlinked at
 * once (the open descriptor keeps the bytes until the download ends, and nothing is left behind if the
 * client or the appliance goes away), streamed. The JSON export is `gatehouse export`'s document, made
 * row by row (core/export.ts). Both are POST forms (CSRF token). A read-only admin gets the export
 * without secrets only: a backup holds password hashes and TOTP keys.
 */
export function backupPages(core: Core) {
  const dataDir = dirname(core.db.$client.filename);
  let downloads = 0;
  const page = (request: Request, errors?: Record<string, string>) => (
    <BackupPage admin={adminOf(request)} dataDir={dataDir} errors={errors} />
  );
  return new Elysia({ name: "backup-pages" })
    .get("/settings/backup", ({ request }) => page(request))
    .post(
      "/settings/backup/database",
      ({ request }) => {
        if (isReadOnly(request)) throw new AppError("forbidden", "read-only admins cannot download backups");
        if (downloads >= maxDownloads)
          throw new AppError("rate_limited", `${maxDownloads} backups are downloading; try again when one is done`);
        // A copy left by an appliance that died mid-VACUUM is stale: VACUUM runs synchronously, so no other
        // download's file exists under that name now (each is unlinked before this handler returns).
        for (const name of readdirSync(dataDir))
          if (name.startsWith(downloadPrefix)) rmSync(join(dataDir, name), { force: true });
        const temp = join(
          dataDir,
          `${downloadPrefix}${randomToken()
            .slice(0, 16)
            .replace(/[^A-Za-z0-9]/g, "x")}`,
        );
        closeSync(createPrivateFile(temp));
        let fd: number;
        try {
          core.db.$client.run("VACUUM INTO ?", [temp]);
          fd = openSync(temp, "r");
        } finally {
          rmSync(temp, { force: true });
        }
        const size = fstatSync(fd).size;
        downloads++;
        core.activity.record("backup.downloaded", "", `database backup, ${size} bytes`);
        return new Response(
          streamFd(fd, () => void downloads--),
          {
            headers: {
              "content-type": "application/vnd.sqlite3",
              "content-length": String(size),
              "content-disposition": `attachment; filename="gatehouse-${stamp()}.db"`,
              "cache-control": "no-store",
            },
          },
        );
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
        const chunks = snapshotExport(core.db.$client.filename, dataDir, secrets);
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
