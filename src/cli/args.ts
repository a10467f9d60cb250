import { type ParseArgsOptionsConfig, parseArgs } from "node:util";
import type { Db } from "../db/client.ts";
import { dataDirOf, DataDirError, DataDirSystemError, existingDataDir, openExistingDataDir } from "../db/data-dir.ts";
import { exitCodes } from "./exit-codes.ts";
import { jsonText, saidText, shownText } from "./output.ts";
import { asked, verbHelp, verbLines } from "./usage.ts";

/** common: the flags every data-dir verb takes besides its own. */
const common = { "data-dir": { type: "string" }, json: { type: "boolean" } } as const;

type Parsed<O extends ParseArgsOptionsConfig> = ReturnType<
  typeof parseArgs<{ args: string[]; allowPositionals: true; strict: true; options: O & typeof common }>
>;

/** VerbArgs: a verb's parsed flags and positionals, whether `--json` was given, and `out` to answer with. */
export interface VerbArgs<O extends ParseArgsOptionsConfig> {
  values: Parsed<O>["values"];
  positionals: string[];
  json: boolean;
  /** out: one answer on stdout: `data` as one JSON line with --json, `text` otherwise */
  out(data: unknown, text: string): void;
}

/**
 * usageError: `gatehouse COMMAND: MESSAGE` on stderr; returns the exit code (2, bad usage, unless given).
 * Every verb says what went wrong the same way, named after itself.
 */
export function usageError(command: string, message: string, code: number = exitCodes.usage): number {
  process.stderr.write(`gatehouse ${saidText(command)}: ${saidText(message)}\n`);
  return code;
}

/**
 * dataDirExit: what a verb exits with when the data dir cannot be used: 1 for a failure of the system (a full
 * disk, an I/O error: as `serve`), 2 for the rest (a person must name or fix it).
 */
export const dataDirExit = (err: DataDirError): number =>
  err instanceof DataDirSystemError ? exitCodes.failure : exitCodes.usage;

/**
 * verbArgs: the preamble the verbs that work on the data dir share: `args` parsed strictly with the verb's
 * own `options` and `--data-dir` (and `--json` unless `json: false`), positionals allowed unless
 * `allowPositionals: false`, and at most `positionals` of them where given. A flag it does not know, a value
 * missing or an argument too many is a usage error (exit 2) named after `command`, with the verb's usage on the
 * next line: then the number to exit with is returned instead of the arguments.
 */
export function verbArgs<const O extends ParseArgsOptionsConfig>(
  command: string,
  args: string[],
  options: O,
  how: { allowPositionals?: boolean; positionals?: number; json?: boolean } = {},
): VerbArgs<O> | number {
  const { "data-dir": dataDir, json } = common;
  // the usage, before anything else (found from outside: `uplinks --help` said there was no database)
  if (args.some(asked)) {
    process.stdout.write(verbHelp(command));
    return exitCodes.ok;
  }
  let parsed: Parsed<O>;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: how.allowPositionals ?? true,
      strict: true,
      options: { "data-dir": dataDir, ...options, ...(how.json === false ? {} : { json }) },
    }) as Parsed<O>;
  } catch (err) {
    return usageError(command, `${(err as Error).message}\n${verbLines(command)}`);
  }
  // found from outside: `integrations remove a b` removed a alone and said so, exit 0
  const extra = parsed.positionals[how.positionals ?? Number.POSITIVE_INFINITY];
  if (extra !== undefined)
    return usageError(command, `unexpected argument "${extra}" (at most ${how.positionals})\n${verbLines(command)}`);
  const asJson = (parsed.values as { json?: boolean }).json === true;
  return {
    values: parsed.values,
    positionals: parsed.positionals,
    json: asJson,
    out: (data, text) => process.stdout.write(asJson ? `${jsonText(data)}\n` : `${shownText(text)}\n`),
  };
}

/**
 * openVerbDataDir: the data dir a verb names (`--data-dir`, else GATEHOUSE_DATA_DIR, else ./data), which must
 * hold a database already (a verb never makes one), opened without its lock (the running appliance follows
 * the change), with its real path. An unusable one is a usage error named after `command`: then the number
 * to exit with is returned.
 */
export function openVerbDataDir(
  command: string,
  flag: string | undefined,
  env: Record<string, string | undefined>,
): { db: Db; dataDir: string } | number {
  try {
    const dataDir = existingDataDir(dataDirOf(flag, env));
    return { db: openExistingDataDir(dataDir), dataDir };
  } catch (err) {
    if (err instanceof DataDirError) return usageError(command, err.message, dataDirExit(err));
    throw err;
  }
}

/**
 * dataVerbArgs: `verbArgs` and then `openVerbDataDir` with the `--data-dir` given, for a verb that works on
 * the database: its arguments with the database and the data dir's real path, or the number to exit with.
 */
export function dataVerbArgs<const O extends ParseArgsOptionsConfig>(
  command: string,
  args: string[],
  env: Record<string, string | undefined>,
  options: O,
  how: { positionals?: number } = {},
): (VerbArgs<O> & { db: Db; dataDir: string }) | number {
  const parsed = verbArgs(command, args, options, how);
  if (typeof parsed === "number") return parsed;
  const opened = openVerbDataDir(command, (parsed.values as { "data-dir"?: string })["data-dir"], env);
  if (typeof opened === "number") return opened;
  return { ...parsed, ...opened };
}
