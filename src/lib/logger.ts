/**
 * Logger: one line per event on stdout (journald adds time and unit), `level msg key=value ...`.
 * Values are JSON-encoded when they contain spaces or quotes so a line can always be parsed back.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function formatValue(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(value.message);
  if (typeof value === "string") return /^[\w.:/@+-]*$/.test(value) && value !== "" ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? "undefined";
}

export function formatLine(level: LogLevel, msg: string, fields: LogFields): string {
  // Newlines in a message would split one event into two journald entries.
  let line = `${level} ${msg.replace(/[\r\n]+/g, " ")}`;
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${formatValue(v)}`;
  return line;
}

/** createLogger: `write` defaults to stdout; tests pass an array sink. */
export function createLogger(
  opts: { level?: LogLevel; write?: (line: string) => void; base?: LogFields } = {},
): Logger {
  const min = order[opts.level ?? "info"];
  const write = opts.write ?? ((line: string) => process.stdout.write(line + "\n"));
  const base = opts.base ?? {};
  const emit = (level: LogLevel) => (msg: string, fields: LogFields = {}) => {
    if (order[level] >= min) write(formatLine(level, msg, { ...base, ...fields }));
  };
  return {
    debug: emit("debug"),
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
    child: (fields) => createLogger({ level: opts.level, write, base: { ...base, ...fields } }),
  };
}

/** silentLogger: for tests that do not read the log. */
export const silentLogger: Logger = createLogger({ write: () => {} });
