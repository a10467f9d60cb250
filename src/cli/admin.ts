import { closeDatabase } from "../db/client.ts";
import { dataDirOf, DataDirError, openExistingDataDir } from "../db/data-dir.ts";
import { ActivityLog } from "../core/activity.ts";
import { AdminStore, type AdminRole } from "../core/admins.ts";
import { AppError } from "../lib/errors.ts";
import { dataDirExit, usageError, verbArgs } from "./args.ts";
import { exitCodes } from "./exit-codes.ts";
import { printable } from "./output.ts";
import { asked, verbHelp, verbLines } from "./usage.ts";
import { readSecretLine } from "./stdin.ts";

/**
 * admin: the admins from the device's shell; works on the data dir whether or not the appliance runs
 * (SQLite WAL + busy_timeout; the appliance reads roles and second factors from the database on each
 * request). The way back in when a browser cannot help: a forgotten password (`set-password`), a lost
 * phone (`reset-2fa`), no full admin left to change roles (`set-role`).
 * - set-password: creates the admin (full, or read-only with `--read-only`) or sets its password
 *   (`--read-only` on an existing admin is refused: that is `set-role`'s job, said explicitly);
 * - list: name, role, two-step sign-in on/off;
 * - set-role NAME full|read-only: the last full admin stays full;
 * - reset-2fa NAME: its TOTP key and recovery codes are removed and its sessions end; it signs in with
 *   the password alone and can set up a new app.
 */
export async function admin(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const [verb, ...rest] = argv;
  if (argv.some(asked)) {
    process.stdout.write(verbHelp("admin"));
    return exitCodes.ok;
  }
  if (!verb || !["set-password", "list", "set-role", "reset-2fa"].includes(verb)) {
    return usageError("admin", `unknown verb "${verb ?? ""}"\n${verbLines("admin")}`);
  }
  const args = verbArgs(
    "admin",
    rest,
    {
      username: { type: "string" },
      ...(verb === "set-password" ? { "read-only": { type: "boolean" as const } } : {}),
    },
    {
      allowPositionals: verb === "set-role" || verb === "reset-2fa",
      positionals: verb === "set-role" ? 2 : 1,
      json: false,
    },
  );
  if (typeof args === "number") return args;
  const { values, positionals } = args;
  const name = positionals[0] ?? values.username;
  if ((verb === "set-role" || verb === "reset-2fa") && !name) {
    return usageError(`admin ${verb}`, `name the admin\n${verbLines("admin")}`);
  }
  const role = positionals[1];
  if (verb === "set-role" && role !== "full" && role !== "read-only") {
    return usageError("admin set-role", `the role is full or read-only\n${verbLines("admin")}`);
  }
  try {
    const db = openExistingDataDir(dataDirOf(values["data-dir"], env));
    try {
      const store = new AdminStore(db);
      const log = new ActivityLog(db);
      switch (verb) {
        case "list": {
          const rows = store.list();
          const lines = rows.map((a) => `${printable(a.username)}\t${a.role}\t2fa ${a.secondFactor ? "on" : "off"}`);
          process.stdout.write(lines.length ? `${lines.join("\n")}\n` : "no admins\n");
          return exitCodes.ok;
        }
        case "set-role": {
          const { changed } = store.setRole(name!, role as AdminRole);
          if (changed) log.record("admin.role-changed", name!, `to ${role}, on the command line`, "cli");
          process.stdout.write(
            changed
              ? `admin "${printable(name!)}" is now ${role}\n`
              : `admin "${printable(name!)}" was ${role} already\n`,
          );
          return exitCodes.ok;
        }
        case "reset-2fa": {
          const { had } = store.resetSecondFactor(name!);
          log.record("admin.2fa-reset", name!, "on the command line; its sessions ended", "cli");
          process.stdout.write(
            had
              ? `two-step sign-in of "${printable(name!)}" removed (key and recovery codes); its sessions were signed out\n`
              : `"${printable(name!)}" had no two-step sign-in; its sessions were signed out\n`,
          );
          return exitCodes.ok;
        }
        default: {
          const username = values.username ?? "admin";
          const readOnly = values["read-only"] === true;
          if (readOnly && store.list().some((a) => a.username === username)) {
            return usageError(
              "admin",
              `"${username}" exists; change its role with: gatehouse admin set-role ${username} read-only`,
            );
          }
          const password = await readSecretLine("New admin password: ");
          const { created } = await store.setPassword(username, password, readOnly ? "read-only" : "full");
          process.stdout.write(
            `${created ? `created ${readOnly ? "read-only " : ""}admin` : "updated admin"} "${printable(username)}"${created ? "" : "; its sessions were signed out"}\n`,
          );
          return exitCodes.ok;
        }
      }
    } finally {
      closeDatabase(db);
    }
  } catch (err) {
    if (err instanceof DataDirError) return usageError("admin", err.message, dataDirExit(err));
    if (err instanceof AppError) return usageError("admin", err.message);
    throw err;
  }
}
