import { randomBytes } from "node:crypto";
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  fsyncSync,
  linkSync,
  lstatSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  statfsSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";

/**
 * Files that hold password hashes or other secrets (backups, exports, the database and its temp
 * copies) are created 0600 from their first byte: opened with O_CREAT|O_EXCL and that mode, never made
 * world-readable first and narrowed with chmod afterwards (a reader that opened it in between keeps its
 * descriptor). They appear under their final name only when complete: written beside it, fsynced, then
 * renamed (or linked, when an existing file must not be replaced).
 */
export const privateMode = 0o600;

/** diskSpace: what `dir`'s file system has available (`df`'s Avail) and its size, in bytes, if it answers. */
export function diskSpace(dir: string): { free: number; size: number } | undefined {
  try {
    const fs = statfsSync(dir);
    return { free: fs.bavail * fs.bsize, size: fs.blocks * fs.bsize };
  } catch {
    return undefined;
  }
}

/** createPrivateFile: a new, empty file, 0600; fails if anything (a file, a symlink) has that name. Returns its descriptor. */
export function createPrivateFile(path: string): number {
  return openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, privateMode);
}

/** tempPathBeside: a fresh hidden name in the same folder (so a rename stays on one file system). */
export function tempPathBeside(path: string, tag = "tmp"): string {
  return join(dirname(path), `.${basename(path)}.${tag}-${randomBytes(6).toString("hex")}`);
}

/** fsyncPath: flushes a file (or a folder's entries) to disk. */
export function fsyncPath(path: string): void {
  const fd = openSync(path, constants.O_RDONLY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsyncFolder: best effort (some file systems refuse to fsync a folder): makes a rename in it durable. */
export function fsyncFolder(path: string): void {
  try {
    fsyncPath(path);
  } catch {
    // EINVAL/EISDIR on file systems without folder fsync: nothing more can be done there.
  }
}

export class TargetError extends Error {
  override name = "TargetError";
}

/**
 * assertReplaceableTarget: `path` does not exist or is a regular file. A rename over anything else
 * would replace the symlink, device or pipe itself (`export /dev/stdout` run as root), not write into it.
 */
export function assertReplaceableTarget(path: string): void {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isFile())
    throw new TargetError(
      `${path} exists and is not a regular file (a symlink, folder, device or pipe); choose another name`,
    );
}

/**
 * publishFile: gives the finished temp file its final name. `replace: false` never overwrites: a hard
 * link fails if the name exists (atomically); where hard links are not supported (vfat on a USB stick)
 * it falls back to checking first, then renaming.
 */
export function publishFile(temp: string, path: string, opts: { replace: boolean }): void {
  if (opts.replace) {
    assertReplaceableTarget(path);
    renameSync(temp, path);
  } else {
    try {
      linkSync(temp, path);
      rmSync(temp, { force: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EEXIST") throw new TargetError(`${path} exists; choose a new file`);
      if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "EMLINK") throw err;
      assertNewTarget(path);
      renameSync(temp, path);
    }
  }
  fsyncFolder(dirname(path));
}

/** assertNewTarget: nothing (no file, no symlink) has that name yet, in a folder that exists. */
export function assertNewTarget(path: string): void {
  try {
    lstatSync(path);
  } catch {
    // a missing folder is the caller's mistake, said in one line (it was a raw ENOENT on the temp file, exit 1)
    let folder;
    try {
      folder = statSync(dirname(path));
    } catch {
      throw new TargetError(`the folder ${dirname(path)} does not exist; create it or choose another`);
    }
    if (!folder.isDirectory()) throw new TargetError(`${dirname(path)} is not a folder`);
    return;
  }
  throw new TargetError(`${path} exists; choose a new file`);
}

/**
 * writePrivateFile: `data` under `path`, 0600, complete or not at all (temp file beside it, fsync,
 * rename). `replace: false` refuses an existing file.
 */
export function writePrivateFile(path: string, data: string | Uint8Array, opts: { replace: boolean }): void {
  if (opts.replace) assertReplaceableTarget(path);
  else assertNewTarget(path);
  const temp = tempPathBeside(path);
  const fd = createPrivateFile(temp);
  try {
    try {
      const bytes = typeof data === "string" ? Buffer.from(data) : data;
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    publishFile(temp, path, opts);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
}

/**
 * openRegularNoFollow: a descriptor of the regular file `path`, opened without following a symlink
 * at its last component (O_NOFOLLOW) and without blocking on a FIFO (O_NONBLOCK); anything else (a
 * symlink, a folder, a device, a pipe) is refused with a TargetError. For files in the data dir: the
 * service's user owns that folder, and root's CLI must not be led by a link planted there (a chmod or
 * a read of /etc/shadow through `gatehouse.db-shm` or a "certificate").
 */
export function openRegularNoFollow(path: string, flags: number = constants.O_RDONLY): number {
  let fd: number;
  try {
    fd = openSync(path, flags | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ELOOP")
      throw new TargetError(`${path} is a symlink; refusing to follow it (remove it if you did not make it)`);
    throw err;
  }
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new TargetError(`${path} is not a regular file (a folder, device or pipe); refusing to use it`);
  }
  return fd;
}

/**
 * narrowToPrivate: a regular file in the data dir left readable by others (by an older release, a
 * restore by hand) becomes 0600: through its descriptor (fchmod), never by path, so a symlink swapped
 * in cannot redirect the chmod. A missing file is fine; a symlink or non-regular file is refused.
 */
export function narrowToPrivate(path: string): void {
  let fd: number;
  try {
    fd = openRegularNoFollow(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  try {
    if ((fstatSync(fd).mode & 0o077) !== 0) fchmodSync(fd, privateMode);
  } finally {
    closeSync(fd);
  }
}

/**
 * readBounded: the content of a regular file of at most `max` bytes (a file from outside: a device or
 * a pipe is refused before a byte is read, and a file that grows while it is read is cut off with an
 * error, not read on). `noFollow`: a symlink is refused too (files in the data dir).
 */
export function readBounded(path: string, max: number, opts: { noFollow?: boolean } = {}): Buffer {
  const fd = opts.noFollow ? openRegularNoFollow(path) : openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new TargetError(`${path} is not a regular file`);
    if (st.size > max) throw new TargetError(`${path} has ${st.size} bytes; at most ${max} are accepted`);
    const chunks: Buffer[] = [];
    let size = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(1 << 20);
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      size += n;
      if (size > max) throw new TargetError(`${path} grew past ${max} bytes while being read`);
      chunks.push(chunk.subarray(0, n));
    }
    return Buffer.concat(chunks, size);
  } finally {
    closeSync(fd);
  }
}
