import { rmSync } from "node:fs";
import { join } from "node:path";
import { createApp } from "../app.ts";
import { notify, startWatchdog } from "../lib/systemd.ts";
import {
  DataDirError,
  DataDirSystemError,
  type DataDirLock,
  lockDataDir,
  pidFileName,
  prepareDataDir,
  removeStaleTemps,
  servePid,
} from "../db/data-dir.ts";
import { discardPrevious, previousName } from "../db/restore.ts";
import { writePrivateFile } from "../lib/files.ts";
import type { Logger } from "../lib/logger.ts";
import { ConfigError, parseServeConfig, serveUsage } from "../config.ts";
import { createLogger } from "../lib/logger.ts";
import { StartRefused } from "../lib/errors.ts";
import { startedAgainNot } from "./allocator.ts";
import { exitCodes } from "./exit-codes.ts";
import { saidText } from "./output.ts";
import { asked, usage } from "./usage.ts";

/** serve: runs until SIGTERM/SIGINT, then stops listeners and database and exits 0. */
export async function serve(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  if (argv.some(asked)) {
    process.stdout.write(usage(serveUsage));
    return exitCodes.ok;
  }
  let config;
  try {
    config = parseServeConfig(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`gatehouse: ${saidText(err.message)}\nRun "gatehouse --help" for the options.\n`);
      return exitCodes.usage;
    }
    throw err;
  }
  const log = createLogger({ level: config.logLevel, format: config.logFormat });
  const notStarted = startedAgainNot();
  if (notStarted)
    log.warn("runs on the runtime's memory allocator defaults: could not start again with its settings", {
      why: notStarted,
    });
  // The data dir's lock first, before the database is opened or migrated, held until this process
  // ends (kill -9 included): a second appliance on the same data dir, a restore or an import --full
  // is refused while it runs, and this one is refused while they run (see db/data-dir.ts).
  let lock: DataDirLock;
  let app;
  try {
    prepareDataDir(config.dataDir);
    lock = lockDataDir(config.dataDir);
  } catch (err) {
    if (err instanceof DataDirError) {
      log.error(err.message);
      // a full disk or an I/O error is the system's failure (1, restarted by the unit), the rest bad configuration
      return err instanceof DataDirSystemError ? exitCodes.failure : exitCodes.usage;
    }
    throw err;
  }
  try {
    // What an interrupted restore left behind (a kill -9 in the middle): no restore runs now.
    const stale = removeStaleTemps(config.dataDir);
    if (stale.length) log.info("removed what an interrupted restore left", { files: stale.join(",") });
    app = createApp(config, log);
  } catch (err) {
    lock.release();
    if (err instanceof DataDirError) {
      log.error(err.message);
      // a full disk or an I/O error is the system's failure (1, restarted by the unit), the rest bad configuration
      return err instanceof DataDirSystemError ? exitCodes.failure : exitCodes.usage;
    }
    throw err;
  }
  // Handlers first: HTTP serves before OPC UA has started, and a SIGTERM in that window must still
  // mean a clean stop (exit 0), not the default action (killed, 143).
  // `on`, not `once`: signal-exit (via proper-lockfile, in node-opcua) re-raises the signal when it
  // finds itself the only listener left, which a spent `once` handler would leave it to be (exit 143).
  const stopSignal = new Promise<string>((resolve) => {
    for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => resolve(sig));
  });
  process.on("SIGHUP", () => app.reloadTls()); // a renewed certificate, like Mosquitto and nginx
  try {
    await app.start();
  } catch (err) {
    log.error("start failed", { err });
    lock.release();
    // a part that will not start until a person acts: 2, which the shipped unit does not restart on
    return err instanceof StartRefused ? exitCodes.usage : exitCodes.failure;
  }
  // Who holds the lock, for people and messages (`restore` names the pid); the lock is the safety.
  const pidFile = join(config.dataDir, pidFileName);
  const wrotePid = bestEffort(log, "cannot write the pid file", () =>
    writePrivateFile(pidFile, `${process.pid}\n`, { replace: true }),
  );
  // Started on a restored database: the one it replaced (kept by `gatehouse restore`) can go now. This
  // process opened that restored database: it has held the lock since before it opened it, and a
  // restore needs the lock, so the database it serves is the one that restore put in place.
  bestEffort(log, "cannot remove the database kept from before the restore", () => {
    if (discardPrevious(config.dataDir))
      log.info("removed the database kept from before the restore", { file: previousName });
  });
  // systemd (Type=notify): ready only now that every listener is bound; then the watchdog pings.
  notify(`READY=1\nSTATUS=serving\nMAINPID=${process.pid}`);
  const stopWatchdog = startWatchdog();
  const signal = await stopSignal;
  log.info("stopping", { signal });
  notify("STOPPING=1");
  stopWatchdog?.();
  // A listener that hangs on close must not keep systemd waiting forever.
  const timeout = setTimeout(() => {
    log.error("stop timed out; exiting");
    process.exit(exitCodes.failure);
  }, 8000);
  await app.stop();
  // Only our own pid file: one that names another process is not ours to remove.
  if (wrotePid && servePid(config.dataDir) === process.pid)
    bestEffort(log, "cannot remove the pid file", () => rmSync(pidFile, { force: true }));
  lock.release();
  clearTimeout(timeout);
  log.info("stopped");
  return exitCodes.ok;
}

/**
 * bestEffort: a write that only informs (the pid file) or tidies (the kept database) never stops a
 * running appliance: on a full disk, a restart after kill -9 used to bind every listener, log ready,
 * then exit 1 with a stack trace because the pid file could not be written (a crash loop under
 * Restart=on-failure). The failure is logged; true if `fn` succeeded.
 */
function bestEffort(log: Logger, message: string, fn: () => void): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    log.warn(message, { err });
    return false;
  }
}
