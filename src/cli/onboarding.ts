import { closeDatabase } from "../db/client.ts";
import { ActivityLog, actAs } from "../core/activity.ts";
import { CredentialStore } from "../core/credentials.ts";
import { EventBus } from "../core/events.ts";
import { Onboarding } from "../core/onboarding.ts";
import { AppError } from "../lib/errors.ts";
import { createLogger } from "../lib/logger.ts";
import { dataVerbArgs, usageError } from "./args.ts";
import { exitCodes } from "./exit-codes.ts";
import { asked, verbLines } from "./usage.ts";
import { printable } from "./output.ts";

/**
 * onboardingCli: opens, closes, lists and approves on the data dir. The running appliance notices the
 * write (SQLite data_version) within half a second; its window then closes on time by itself.
 */
export async function onboardingCli(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const [verb, ...rest] = argv;
  const args = dataVerbArgs(
    "onboarding",
    asked(verb) ? argv : rest,
    env,
    {
      minutes: { type: "string" },
      type: { type: "string", multiple: true },
      description: { type: "string" },
    },
    { positionals: ({ open: 0, close: 0, list: 0 } as Record<string, number>)[verb ?? ""] },
  );
  if (typeof args === "number") return args;
  const { values, positionals, out, db } = args;
  const events = new EventBus();
  const activity = new ActivityLog(db);
  activity.follow(events);
  const log = createLogger({ level: "warn", write: (l) => process.stderr.write(`${l}\n`) });
  const onboarding = new Onboarding(db, new CredentialStore(db, events), events, activity, log);
  try {
    return await actAs("cli", async () => {
      switch (verb) {
        case "open": {
          const minutes = values.minutes === undefined ? 10 : Number(values.minutes);
          const s = onboarding.open({ minutes, types: values.type ?? null, by: "cli" });
          out(
            s,
            `onboarding open until ${new Date(s.openUntil!).toISOString()} for ${s.types?.join(", ") ?? "all types"}`,
          );
          return exitCodes.ok;
        }
        case "close":
          onboarding.close("closed");
          out({ open: false }, "onboarding closed; pending requests dropped");
          return exitCodes.ok;
        case "list": {
          const s = onboarding.status();
          const requests = onboarding.list();
          out(
            { ...s, requests },
            `onboarding ${s.open ? `open until ${new Date(s.openUntil!).toISOString()}` : "closed"}\n` +
              (requests.length
                ? requests
                    .map(
                      (r) =>
                        `${r.id}\t${r.type}\t${printable(r.username)}\t${printable(r.clientId ?? "")}\t${printable(r.remote ?? "")}\t${r.attempts} attempts\t${printable(r.fingerprint ?? "")}`,
                    )
                    .join("\n")
                : "no pending requests"),
          );
          return exitCodes.ok;
        }
        case "approve": {
          const ids = positionals.map(Number);
          if (ids.length === 0 || !ids.every(Number.isSafeInteger))
            return fail("name the request ids to approve (see: gatehouse onboarding list)");
          const { approved, failed } = onboarding.approve(ids, { description: values.description });
          out(
            { approved, failed },
            [
              ...approved.map((i) => `approved ${i.username} (${i.type})`),
              ...failed.map((f) => `request ${f.id}: ${f.message}`),
            ].join("\n"),
          );
          return failed.length ? exitCodes.usage : exitCodes.ok;
        }
        default:
          return fail(`unknown verb "${verb ?? ""}"\n${verbLines("onboarding")}`);
      }
    });
  } catch (err) {
    if (err instanceof AppError) return fail(err.message);
    throw err;
  } finally {
    onboarding.stop();
    closeDatabase(db);
  }
}

const fail = (message: string) => usageError("onboarding", message);
