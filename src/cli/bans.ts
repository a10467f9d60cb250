import { closeDatabase } from "../db/client.ts";
import { ActivityLog, actAs } from "../core/activity.ts";
import { BanList, type Ban, type BanKind } from "../core/bans.ts";
import { AppError, ValidationError } from "../lib/errors.ts";
import { dataVerbArgs, usageError } from "./args.ts";
import { exitCodes } from "./exit-codes.ts";
import { printable } from "./output.ts";
import { asked, verbLines } from "./usage.ts";

/**
 * bansCli: lists, adds and lifts bans on the data dir, beside the running appliance or without it. The
 * appliance notices the write (SQLite data_version): a login asks first, so a new ban refuses the next
 * login at once; the accept check and dropping matching live sessions follow within half a second.
 */
export async function bansCli(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const [verb, ...rest] = argv;
  const args = dataVerbArgs(
    "bans",
    asked(verb) ? argv : rest,
    env,
    {
      address: { type: "string" },
      "client-id": { type: "string" },
      username: { type: "string" },
      minutes: { type: "string" },
    },
    { positionals: ({ list: 0, add: 0, remove: 1 } as Record<string, number>)[verb ?? ""] },
  );
  if (typeof args === "number") return args;
  const { values, positionals, out, db } = args;
  // the value as text: a client id may hold a tab or a line break (a forged column or row)
  const line = (b: Ban) => `${b.id}\t${b.kind}\t${printable(b.value)}\tuntil ${new Date(b.expiresAt).toISOString()}`;
  try {
    return actAs("cli", () => {
      const bans = new BanList(db, new ActivityLog(db));
      switch (verb) {
        case "list": {
          const all = bans.list();
          out(all, all.length ? all.map(line).join("\n") : "no bans");
          return exitCodes.ok;
        }
        case "add": {
          const given: [BanKind, string | undefined][] = [
            ["address", values.address],
            ["clientId", values["client-id"]],
            ["username", values.username],
          ];
          const named = given.filter(([, v]) => v !== undefined);
          if (named.length !== 1)
            return fail(`name exactly one of --address, --client-id or --username\n${verbLines("bans")}`);
          const minutesText = values.minutes ?? "60";
          if (!/^[0-9]{1,6}$/.test(minutesText))
            throw new ValidationError({ minutes: "--minutes: a whole number of minutes" });
          const [kind, value] = named[0]!;
          const ban = bans.add({ kind, value: value!, minutes: Number(minutesText) });
          out(ban, `banned ${line(ban)}`);
          return exitCodes.ok;
        }
        case "remove": {
          const id = Number(positionals[0]);
          if (positionals.length !== 1 || !Number.isSafeInteger(id) || id <= 0)
            return fail("name the ban id to remove (see: gatehouse bans list)");
          const ban = bans.remove(id);
          out(ban, `removed ${line(ban)}`);
          return exitCodes.ok;
        }
        default:
          return fail(`unknown verb "${verb ?? ""}"\n${verbLines("bans")}`);
      }
    });
  } catch (err) {
    if (err instanceof AppError) return fail(err.message);
    throw err;
  } finally {
    closeDatabase(db);
  }
}

const fail = (message: string) => usageError("bans", message);
