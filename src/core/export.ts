import { lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { closeDatabase, openDatabase, type Db } from "../db/client.ts";
import { existingDataDir } from "../db/data-dir.ts";
import { readBounded, TargetError } from "../lib/files.ts";
import { allDefaultPermissions } from "./settings.ts";

/** maxCertificateBytes: a trusted certificate larger than this is neither exported nor imported. */
export const maxCertificateBytes = 64 * 1024;

/** trustedFolder: where the OPC UA listener keeps the client certificates it trusts, under the data dir. */
const trustedFolder = ["pki", "trusted", "certs"] as const;

/**
 * trustedPath: the trusted-certificates folder under the data dir's real path, each folder on the way
 * checked with lstat: a real folder or absent (`undefined` from there on). The data dir belongs to the
 * service's user: a `pki` or `certs` that is a symlink (to /etc) is refused, not followed by root.
 */
export function trustedPath(dataDir: string): { path: string; exists: boolean } {
  let path = existingDataDir(dataDir);
  let exists = true;
  for (const part of trustedFolder) {
    path = join(path, part);
    if (!exists) continue;
    let st;
    try {
      st = lstatSync(path);
    } catch {
      exists = false;
      continue;
    }
    if (!st.isDirectory())
      throw new TargetError(`${path} is not a folder (a symlink?); refusing to use it for trusted certificates`);
  }
  return { path, exists };
}

/**
 * readTrustedCertificates: the trusted OPC UA client certificates for an export: only regular files
 * (lstat, then opened with O_NOFOLLOW) inside the data dir, at most the size an import accepts; what
 * is skipped is said (a symlink there pointed root's export at /etc/shadow).
 */
export function readTrustedCertificates(dataDir: string): { certificates: Record<string, string>; skipped: string[] } {
  const { path, exists } = trustedPath(dataDir);
  const certificates: Record<string, string> = {};
  const skipped: string[] = [];
  if (!exists) return { certificates, skipped };
  for (const name of readdirSync(path).sort()) {
    if (!/\.(pem|der)$/i.test(name)) continue;
    const file = join(path, name);
    if (!lstatSync(file).isFile()) {
      skipped.push(`${file}: not a regular file (a symlink?)`);
      continue;
    }
    try {
      certificates[name] = readBounded(file, maxCertificateBytes, { noFollow: true }).toString("base64");
    } catch (err) {
      skipped.push(`${file}: ${(err as Error).message}`);
    }
  }
  return { certificates, skipped };
}

/**
 * exportChunks: the `gatehouse export` document (format gatehouse-export, version 1), made piece by
 * piece for a download: one integration row at a time from the database (a statement iterator, not the
 * whole table), one certificate at a time, so a large fleet is never one string in memory. Without
 * `secrets` the password hashes are left out (`"secrets": false` says so): such a file is for reading and
 * comparing; `gatehouse import --full` needs the hashes.
 */
export function* exportChunks(db: Db, dataDir: string, opts: { secrets: boolean }): Generator<string> {
  const head: Record<string, unknown> = {
    format: "gatehouse-export",
    version: 1,
    exportedAt: new Date().toISOString(),
  };
  if (!opts.secrets) head.secrets = false;
  yield `${JSON.stringify(head).slice(0, -1)},\n"integrations": [`;
  let first = true;
  const rows = db.$client
    .query(
      "SELECT type, username, description, active, password_hash, publish_acl, subscribe_acl, deny_publish_acl, deny_subscribe_acl FROM integrations ORDER BY id",
    )
    .iterate() as IterableIterator<Record<string, string | number>>;
  for (const r of rows) {
    const entry: Record<string, unknown> = {
      type: r.type,
      username: r.username,
      description: r.description,
      active: r.active === 1,
    };
    if (opts.secrets) entry.passwordHash = r.password_hash;
    entry.publishAcl = JSON.parse(String(r.publish_acl));
    entry.subscribeAcl = JSON.parse(String(r.subscribe_acl));
    entry.denyPublishAcl = JSON.parse(String(r.deny_publish_acl));
    entry.denySubscribeAcl = JSON.parse(String(r.deny_subscribe_acl));
    yield `${first ? "" : ","}\n ${JSON.stringify(entry)}`;
    first = false;
  }
  yield `\n],\n"defaultPermissions": ${JSON.stringify(allDefaultPermissions(db))},\n"trustedCertificates": {`;
  const { path, exists } = trustedPath(dataDir);
  first = true;
  if (exists) {
    for (const name of readdirSync(path).sort()) {
      if (!/\.(pem|der)$/i.test(name)) continue;
      const file = join(path, name);
      if (!lstatSync(file).isFile()) continue; // a link is never followed (readTrustedCertificates)
      let b64: string;
      try {
        b64 = readBounded(file, maxCertificateBytes, { noFollow: true }).toString("base64");
      } catch {
        continue;
      }
      yield `${first ? "" : ","}\n ${JSON.stringify(name)}: ${JSON.stringify(b64)}`;
      first = false;
    }
  }
  yield "\n}\n}\n";
}

/**
 * snapshotExport: the export from a connection of its own inside one read transaction: one consistent
 * snapshot however slowly the browser reads, and the appliance's connection stays free for its writes
 * and for `VACUUM INTO` (which refuses to run while a statement of its connection is under way).
 */
export function* snapshotExport(path: string, dataDir: string, secrets: boolean): Generator<string> {
  const db = openDatabase(path, { noFollow: true });
  try {
    db.$client.run("BEGIN");
    yield* exportChunks(db, dataDir, { secrets });
    db.$client.run("COMMIT");
  } finally {
    closeDatabase(db);
  }
}
