import { isBusy } from "../lib/errors.ts";
import { controlsAndMarks, escapeBeyondC0, unicodeEscape } from "../lib/logger.ts";

/**
 * oneLine: an unexpected error as one line for stderr (a stack trace on stdout broke `--json`
 * consumers); SQLite's "database is locked" in words a person can act on.
 */
export function oneLine(err: unknown): string {
  if (isBusy(err)) return "the database is busy (the appliance is writing); try again";
  const e = err as { code?: unknown; message?: unknown } | undefined;
  const text = typeof e?.message === "string" ? e.message : String(err);
  const code = typeof e?.code === "string" && !text.includes(e.code) ? ` (${e.code})` : "";
  return `${text}${code}`.replace(/\s+/g, " ").trim();
}

/**
 * printable: text from outside (an upstream broker's reason string, a file in the data dir, a stranger's client
 * id) for a terminal: what a terminal would act on is shown as a `\uXXXX` escape (found from outside: a
 * hostile upstream's PUBACK reason string cleared root's screen, set its title and printed a false status line
 * through `gatehouse uplinks status`). `--json` needs none of this: JSON escapes it.
 */
export function printable(text: string): string {
  return text.replace(controlsAndMarks, unicodeEscape);
}

/**
 * shownText: a verb's plain answer, whose names may have come from outside (an integration's username from
 * an onboarding request, a client id banned, an uplink's filter): `printable` between its own line breaks and
 * tabs (found from outside: `uplinks list` and `bans list` printed escape sequences raw; `--json` had them
 * escaped).
 */
export function shownText(text: string): string {
  return text
    .split("\n")
    .map((line) => line.split("\t").map(printable).join("\t"))
    .join("\n");
}

/**
 * saidText: a message for stderr that may carry what a person or a script typed (an argument echoed in a
 * refusal): each line `printable`, and at most 1 000 characters (found from outside: escape sequences in an
 * argument set the terminal's title and cleared its screen through `unknown command "…"`, and a 130 KB
 * argument was echoed whole).
 */
export function saidText(text: string): string {
  return text
    .split("\n")
    .map((line) => {
      const p = printable(line);
      return p.length > 1000 ? `${p.slice(0, 1000)}… (${p.length - 1000} more characters)` : p;
    })
    .join("\n");
}

/**
 * jsonText: `data` as JSON whose every character a terminal would act on is a `\uXXXX` escape: JSON.stringify
 * escapes C0 only (found from outside: C1's CSI and OSC, DEL and bidi overrides reached the terminal through
 * `--json`). The same JSON value: such characters can only be in strings, where an escape means them.
 */
export function jsonText(data: unknown): string {
  return escapeBeyondC0(JSON.stringify(data));
}

/** writeErrors: the first write error of each stream `watchWrites` watches. */
const writeErrors = new WeakMap<NodeJS.WriteStream, Error>();

/**
 * watchWrites: remembers the first write error of `stream` (stdout on a full disk or /dev/full: ENOSPC; a
 * reader that went away: EPIPE). Bun reports it as an `error` event after the stream has finished, so
 * without this `export > /backup/fleet.json` on a full disk exited 0 with an empty file. Call before writing.
 */
export function watchWrites(stream: NodeJS.WriteStream): void {
  stream.on("error", (err) => {
    if (!writeErrors.has(stream)) writeErrors.set(stream, err);
  });
}

/**
 * drained: resolves once everything written to `stream` has reached its reader, with the write error if one
 * occurred (see `watchWrites`). Bun hands a pipe's writes to the kernel as the reader takes them;
 * `process.exit` right after a large write (an export to `| gzip`, `list --json | jq`) cut the output at
 * 64 KiB with exit 0. Ending the stream and waiting for `finish` waits for the last byte; the error of a
 * failed write arrives a turn of the event loop after `finish`, so that turn is waited for too.
 */
export async function drained(stream: NodeJS.WriteStream): Promise<Error | undefined> {
  // a stream that failed or ended already says nothing more (found from outside: waiting for it emptied the
  // event loop, and the process exited 0 whatever the verb returned, `2>/dev/full` made a refusal a success)
  if (stream.destroyed || stream.writableFinished || stream.errored)
    return writeErrors.get(stream) ?? stream.errored ?? undefined;
  await new Promise<void>((resolve) => {
    stream.once("finish", () => resolve());
    stream.once("error", () => resolve());
    stream.once("close", () => resolve());
    stream.end();
  });
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setTimeout(resolve, 0));
  return writeErrors.get(stream);
}
