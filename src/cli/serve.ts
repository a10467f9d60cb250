import { rmSync } from "node:fs";
import { join } from "node:path";
import { createApp } from "../app.ts";
import { notify, startWatchdog } from "../lib/systemd.ts";
import { pidFileName } from "./backup.ts";
import { DataDirError } from "../db/data-dir.ts";
import { discardPrevious, previousName } from "../db/restore.ts";
import { writePrivateFile } from "../lib/files.ts";
import { ConfigError, parseServeConfig, usage } from "../config.ts";
import { createLogger } from "../lib/logger.ts";
import { exitCodes } from "./exit-codes.ts";

/** serve: runs until SIGTERM/SIGINT, then stops listeners and database and exits 0. */
export async function serve(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(usage);
    return exitCodes.ok;
  }
  let config;
  try {
    config = parseServeConfig(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`gatehouse: ${err.message}\nRun "gatehouse --help" for the options.\n`);
      return exitCodes.usage;
    }
    throw err;
  }
  const log = createLogger({ level: config.logLevel, format: config.logFormat });
  let app;
  try {
    app = createApp(config, log);
  } catch (err) {
    if (err instanceof DataDirError) {
      log.error(err.message);
      return exitCodes.usage;
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
    return exitCodes.failure;
  }
  // `gatehouse restore` refuses to replace the database while this process runs.
  const pidFile = join(config.dataDir, pidFileName);
  writePrivateFile(pidFile, `${process.pid}\n`, { replace: true });
  // Started on a restored database: the one it replaced (kept by `gatehouse restore`) can go now.
  if (discardPrevious(config.dataDir))
    log.info("removed the database kept from before the restore", { file: previousName });
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
  rmSync(pidFile, { force: true });
  clearTimeout(timeout);
  log.info("stopped");
  return exitCodes.ok;
}
