import { isBusy } from "../lib/errors.ts";

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
 * drained: resolves once everything written to `stream` has reached its reader. Bun hands a pipe's
 * writes to the kernel as the reader takes them; `process.exit` right after a large write (an export
 * to `| gzip`, `list --json | jq`) cut the output at 64 KiB with exit 0. Ending the stream and waiting
 * for `finish` waits for the last byte (or an error: a reader that went away, EPIPE).
 */
export function drained(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    stream.once("finish", () => resolve());
    stream.once("error", () => resolve());
    stream.once("close", () => resolve());
    stream.end();
  });
}
