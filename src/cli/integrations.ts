import { closeDatabase } from "../db/client.ts";
import { ActivityLog, enterActor } from "../core/activity.ts";
import { CredentialStore } from "../core/credentials.ts";
import { EventBus } from "../core/events.ts";
import { isIntegrationType, typeListText, type Integration } from "../core/types.ts";
import { AppError, NotFoundError, ValidationError } from "../lib/errors.ts";
import { dataVerbArgs, usageError } from "./args.ts";
import { exitCodes } from "./exit-codes.ts";
import { printable } from "./output.ts";
import { asked } from "./usage.ts";
import { mapMosquittoAcl, maxMosquittoFileBytes, parseMosquittoPasswd } from "./mosquitto.ts";
import { readBounded } from "../lib/files.ts";
import { parseImport, readImportFile } from "./import-file.ts";
import { readSecretLine } from "./stdin.ts";

/** namesTaken: how many arguments besides flags each verb takes (more is refused) */
const namesTaken: Record<string, number> = {
  list: 0,
  add: 0,
  remove: 1,
  enable: 1,
  disable: 1,
  permissions: 1,
  import: 1,
};

/**
 * integrationsCli: offline CRUD on the data dir. The running appliance polls SQLite's data_version
 * and reconciles within half a second, so a change here drops sessions there exactly like the page.
 */
export async function integrationsCli(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const [verb, ...rest] = argv;
  const args = dataVerbArgs(
    "integrations",
    asked(verb) ? argv : rest,
    env,
    {
      type: { type: "string" },
      username: { type: "string" },
      description: { type: "string" },
      "password-stdin": { type: "boolean" },
      "mosquitto-passwd": { type: "string" },
      "mosquitto-acl": { type: "string" },
      publish: { type: "string" },
      subscribe: { type: "string" },
      "deny-publish": { type: "string" },
      "deny-subscribe": { type: "string" },
    },
    { positionals: namesTaken[verb ?? ""] },
  );
  if (typeof args === "number") return args;
  const { values, positionals, json, out, db } = args;
  const events = new EventBus();
  new ActivityLog(db).follow(events); // what the CLI changes is in the activity log, by "cli"
  enterActor("cli");
  const store = new CredentialStore(db, events);
  const close = () => closeDatabase(db);

  const byUsername = (name: string | undefined): Integration => {
    if (!name) throw new ValidationError({ username: `name the integration: gatehouse integrations ${verb} USERNAME` });
    const i = store.findByUsername(name);
    if (!i) throw new NotFoundError(`integration "${name}"`);
    return i;
  };

  try {
    switch (verb) {
      case "list": {
        if (values.type && !isIntegrationType(values.type))
          throw new ValidationError({ type: `type must be one of ${typeListText}` });
        const type = values.type as Integration["type"] | undefined;
        // one pass (paging through list() sorted the whole fleet once a page: minutes for 100 000)
        const all = store.all(type);
        out(
          all,
          all.length === 0
            ? "no integrations"
            : all
                .map(
                  (i) =>
                    `${i.username}\t${i.type}\t${i.active ? "active" : "deactivated"}\t${i.lastLoginAt ? new Date(i.lastLoginAt).toISOString() : "never"}`,
                )
                .join("\n"),
        );
        return exitCodes.ok;
      }
      case "add": {
        if (!isIntegrationType(values.type))
          throw new ValidationError({ type: `--type must be one of ${typeListText}` });
        const password = values["password-stdin"] ? await readSecretLine("Password: ") : undefined;
        const { integration, password: pw } = await store.create({
          type: values.type,
          username: values.username,
          password,
          description: values.description,
        });
        out(
          { integration, password: values["password-stdin"] ? undefined : pw },
          `created ${integration.type} integration\nusername: ${integration.username}${values["password-stdin"] ? "" : `\npassword: ${pw}\n(the password is shown once; only its hash is stored)`}`,
        );
        return exitCodes.ok;
      }
      case "remove":
      case "enable":
      case "disable": {
        const i = byUsername(positionals[0]);
        const result = verb === "remove" ? store.remove(i.id) : store.setActive(i.id, verb === "enable");
        out(result, `${verb === "remove" ? "removed" : verb === "enable" ? "enabled" : "disabled"} ${i.username}`);
        return exitCodes.ok;
      }
      case "permissions": {
        const i = byUsername(positionals[0]);
        const list = (v: string | undefined) => (v === undefined ? undefined : v.split(/[\s,]+/).filter(Boolean));
        const patch = {
          publishAcl: list(values.publish),
          subscribeAcl: list(values.subscribe),
          denyPublishAcl: list(values["deny-publish"]),
          denySubscribeAcl: list(values["deny-subscribe"]),
        };
        const changed = Object.values(patch).some((v) => v !== undefined) ? store.update(i.id, patch) : i;
        const show = (l: string[]) => (l.length ? printable(l.join(" ")) : "(none)");
        out(
          {
            username: changed.username,
            publish: changed.publishAcl,
            subscribe: changed.subscribeAcl,
            denyPublish: changed.denyPublishAcl,
            denySubscribe: changed.denySubscribeAcl,
          },
          `${changed.username}\npublish:        ${show(changed.publishAcl)}\nsubscribe:      ${show(changed.subscribeAcl)}\ndeny publish:   ${show(changed.denyPublishAcl)}\ndeny subscribe: ${show(changed.denySubscribeAcl)}`,
        );
        return exitCodes.ok;
      }
      case "import": {
        if (values["mosquitto-passwd"]) {
          // Migrating from Mosquitto: every user keeps its password (its hash is verified as it is and
          // rehashed at the next login); ACL lines map to topic permissions, the rest is listed.
          const read = async (path: string) => {
            try {
              return new TextDecoder("utf-8", { fatal: true }).decode(readBounded(path, maxMosquittoFileBytes));
            } catch (err) {
              const code = (err as NodeJS.ErrnoException).code;
              throw new ValidationError({
                file:
                  code === "ENOENT"
                    ? `no such file: ${path}`
                    : err instanceof TypeError
                      ? `${path} is not UTF-8 text`
                      : (err as Error).message,
              });
            }
          };
          const users = parseMosquittoPasswd(await read(values["mosquitto-passwd"]));
          const mapped = values["mosquitto-acl"]
            ? mapMosquittoAcl(
                await read(values["mosquitto-acl"]),
                users.map((u) => u.username),
              )
            : undefined;
          const type = isIntegrationType(values.type) ? values.type : "mqtt";
          const created = store.adoptMany(
            users.map((u) => ({
              type,
              username: u.username,
              passwordHash: u.passwordHash,
              description: "imported from Mosquitto",
              ...(mapped?.acl.get(u.username) ?? {}),
            })),
          );
          out(
            { imported: created.map((i) => i.username), unmapped: mapped?.unmapped ?? [] },
            `imported ${created.length} Mosquitto user(s) as ${type} integrations${mapped?.unmapped.length ? `\nnot mapped (no equivalent; check them by hand):\n  ${mapped.unmapped.join("\n  ")}` : ""}`,
          );
          return exitCodes.ok;
        }
        const file = positionals[0];
        if (!file) throw new ValidationError({ file: "usage: gatehouse integrations import FILE (.csv or .json)" });
        const entries = parseImport(readImportFile(file), file);
        const started = performance.now();
        // A progress line on a terminal (rows done, rate, time left); nothing in a pipe or --json.
        let shown = 0;
        const progress =
          process.stderr.isTTY && !json
            ? (done: number, total: number) => {
                const now = performance.now();
                if (now - shown < 250 && done < total) return;
                shown = now;
                const rate = done / Math.max(0.001, (now - started) / 1000);
                process.stderr.write(
                  `\r${done}/${total} rows, ${rate.toFixed(0)}/s, ${Math.ceil((total - done) / Math.max(rate, 1))} s left   `,
                );
              }
            : undefined;
        const created = await store.createMany(entries, Math.max(4, navigator.hardwareConcurrency ?? 4), progress);
        if (progress) process.stderr.write("\n");
        if (!json)
          process.stderr.write(
            `imported ${created.length} in ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
          );
        // Every row, with its name (it may have been made up) and a made-up password once.
        out(
          created.map((c, i) => ({
            username: c.integration.username,
            type: c.integration.type,
            password: entries[i]!.password ? undefined : c.password,
          })),
          `imported ${created.length} integration(s)` +
            created
              .map(
                (c, i) =>
                  `\n${c.integration.username}\t${c.integration.type}\t${entries[i]!.password ? "(password as given)" : c.password}`,
              )
              .join(""),
        );
        return exitCodes.ok;
      }
      default:
        return fail(
          `unknown verb "${verb ?? ""}"; use list | add | remove | enable | disable | permissions | import`,
          exitCodes.usage,
        );
    }
  } catch (err) {
    if (err instanceof AppError) return fail(err.message, exitCodes.usage);
    throw err;
  } finally {
    close();
  }
}

const fail = (message: string, code: number) => usageError("integrations", message, code);
