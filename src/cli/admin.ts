import { parseArgs } from "node:util";
import { closeDatabase } from "../db/client.ts";
import { dataDirOf, DataDirError, openExistingDataDir } from "../db/data-dir.ts";
import { AdminStore } from "../core/admins.ts";
import { AppError } from "../lib/errors.ts";
import { exitCodes } from "./exit-codes.ts";
import { readSecretLine } from "./stdin.ts";

/** admin set-password: works on the data dir whether or not the appliance runs (SQLite WAL + busy_timeout). */
export async function admin(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb !== "set-password") {
    process.stderr.write(
      `gatehouse admin: unknown verb "${verb ?? ""}"; use: gatehouse admin set-password [--username NAME]\n`,
    );
    return exitCodes.usage;
  }
  let values;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: { username: { type: "string" }, "data-dir": { type: "string" } },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`gatehouse admin: ${(err as Error).message}\n`);
    return exitCodes.usage;
  }
  try {
    const db = openExistingDataDir(dataDirOf(values["data-dir"], env));
    const password = await readSecretLine("New admin password: ");
    const { created } = await new AdminStore(db).setPassword(values.username ?? "admin", password);
    closeDatabase(db);
    process.stdout.write(
      `${created ? "created" : "updated"} admin "${values.username ?? "admin"}"${created ? "" : "; its sessions were signed out"}\n`,
    );
    return exitCodes.ok;
  } catch (err) {
    if (err instanceof AppError || err instanceof DataDirError) {
      process.stderr.write(`gatehouse admin: ${err.message}\n`);
      return exitCodes.usage;
    }
    throw err;
  }
}
