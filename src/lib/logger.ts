export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

/**
 * Logger: one line per event on stdout (journald adds time and unit), `level msg key=value ...`.
 * Values are JSON-encoded when they contain spaces or quotes so a line can always be parsed back.
 */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** maxValueChars: a logged value is cut here (a client chooses its name, and a name can be 64 KB). */
const maxValueChars = 256;

function bounded(text: string): string {
  return text.length <= maxValueChars
    ? text
    : `${text.slice(0, maxValueChars)}…(+${text.length - maxValueChars} chars)`;
}

function formatValue(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(bounded(value.message));
  if (typeof value === "string")
    return /^[\w.:/@+-]*$/.test(value) && value !== "" && value.length <= maxValueChars
      ? value
      : JSON.stringify(bounded(value));
  return bounded(JSON.stringify(value) ?? "undefined");
}

/**
 * beyondC0: what a terminal would act on or hide that JSON leaves as it is (it escapes C0 only): DEL and C1
 * (8-bit CSI, OSC), the bidirectional marks, embeddings, overrides and isolates, zero-width and invisible
 * formatting characters (the soft hyphen, the interlinear annotation marks, the musical ones, the tag
 * characters that can carry hidden text), line and paragraph separators, the byte order mark and the
 * noncharacters U+FFFE and U+FFFF.
 */
export const beyondC0 =
  /[\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\ufffe\uffff\u{1d173}-\u{1d17a}\u{e0000}-\u{e007f}]/gu;

/**
 * unicodeEscape: one character as `\uXXXX`, each UTF-16 unit of it (a tag character beyond U+FFFF as its two
 * halves: inside a JSON string the same value)
 */
export const unicodeEscape = (c: string) => {
  let out = "";
  for (let i = 0; i < c.length; i++) out += `\\u${c.charCodeAt(i).toString(16).padStart(4, "0")}`;
  return out;
};

/** escapeBeyondC0: `beyondC0` as `\uXXXX` (inside a JSON string: the same value) */
export const escapeBeyondC0 = (text: string) => text.replace(beyondC0, unicodeEscape);

/** controlsAndMarks: `beyondC0` and the C0 control characters: what a terminal or a page would act on or hide */
export const controlsAndMarks = new RegExp(`[\\u0000-\\u001f]|${beyondC0.source}`, "gu");

/**
 * shownName: a name from outside (a topic a device chose) inside a status message that the page, the API and
 * the CLI show: at most `max` characters, cut between two code points and marked with "…", and what would
 * act on, hide or reorder the text around it (control characters, bidirectional overrides, invisible
 * characters) and any backslash as `\uXXXX`, so that every escape in it is one made here (found from
 * outside: a topic cut at 128 UTF-16 units split an emoji, leaving a lone surrogate in the API's JSON, and a
 * right-to-left override in a device's topic reversed the rest of the uplink's error on the page).
 */
export function shownName(text: string, max = 128): string {
  let cut = text;
  if (text.length > max) {
    let end = 0;
    let points = 0;
    for (const c of text) {
      if (points++ === max) break;
      end += c.length;
    }
    if (end < text.length) cut = `${text.slice(0, end)}…`;
  }
  // a backslash first: a topic holding the text `\u202e` must not read as an escape made here (found from outside)
  return cut.replace(/\\/g, "\\u005c").replace(controlsAndMarks, unicodeEscape);
}

export function formatLine(level: LogLevel, msg: string, fields: LogFields): string {
  // Newlines in a message would split one event into two journald entries.
  let line = `${level} ${bounded(msg.replace(/[\r\n]+/g, " "))}`;
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${formatValue(v)}`;
  // what a stranger chose (a client id, a username) is quoted as JSON, which passed C1 and bidi overrides raw
  // to a terminal reading the journal (found from outside)
  return escapeBeyondC0(line);
}

/** eventOf: the stable name of a log message (`login failed` -> `login_failed`), for log pipelines. */
export function eventOf(msg: string): string {
  return msg
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_|_$/g, "")
    .slice(0, 64);
}

/** formatJson: one JSON object per line (journald, Loki, Elastic), values bounded like the text form. */
export function formatJson(level: LogLevel, msg: string, fields: LogFields): string {
  const out: Record<string, unknown> = { level, event: eventOf(msg), msg: bounded(msg) };
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || k === "level" || k === "event" || k === "msg") continue;
    out[k] =
      v instanceof Error
        ? bounded(v.message)
        : typeof v === "string"
          ? bounded(v)
          : typeof v === "object" && v !== null
            ? bounded(JSON.stringify(v))
            : v;
  }
  return escapeBeyondC0(JSON.stringify(out));
}

/**
 * rateLimited: at most `perSecond` lines a second for one message (a flood of failed logins from a
 * sprayer is one message); what is held back is counted and reported once the second is over.
 */
function rateLimited(
  write: (line: string) => void,
  perSecond: number,
): (level: LogLevel, msg: string, line: () => string) => void {
  const seconds = new Map<string, { second: number; count: number; suppressed: number }>();
  return (level, msg, line) => {
    const second = Math.floor(Date.now() / 1000);
    let s = seconds.get(msg);
    if (!s || s.second !== second) {
      if (s?.suppressed) write(formatLine("warn", "log lines suppressed", { message: msg, count: s.suppressed }));
      if (!s && seconds.size > 1000) seconds.clear();
      seconds.set(msg, (s = { second, count: 0, suppressed: 0 }));
    }
    if (++s.count > perSecond && level !== "error") s.suppressed++;
    else write(line()); // formatted only when written: a flood of one message costs a counter each
  };
}

/** createLogger: `write` defaults to stdout; tests pass an array sink. */
export function createLogger(
  opts: {
    level?: LogLevel;
    write?: (line: string) => void;
    base?: LogFields;
    perSecond?: number;
    format?: "text" | "json";
  } = {},
): Logger {
  const min = order[opts.level ?? "info"];
  const write = opts.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const base = opts.base ?? {};
  const limited = rateLimited(write, opts.perSecond ?? 50);
  const build = (fields: LogFields): Logger => {
    const emit =
      (level: LogLevel) =>
      (msg: string, more: LogFields = {}) => {
        if (order[level] >= min)
          limited(level, msg, () =>
            (opts.format === "json" ? formatJson : formatLine)(level, msg, { ...fields, ...more }),
          );
      };
    return {
      debug: emit("debug"),
      info: emit("info"),
      warn: emit("warn"),
      error: emit("error"),
      child: (f) => build({ ...fields, ...f }),
    };
  };
  return build(base);
}

/** silentLogger: for tests that do not read the log. */
export const silentLogger: Logger = createLogger({ write: () => {} });

/** SteadyFailure: see `steadyFailure`. */
export interface SteadyFailure {
  /** failed: the job failed again (logged only when it starts failing, or `everyMs` after the last line) */
  failed(err: unknown): void;
  /** ok: the job worked (a line if it had been failing) */
  ok(): void;
}

/**
 * steadyFailure: the failures of a background job that repeats while its cause lasts (a full disk fails a
 * flush every few seconds): the first failure is logged with its error, then at most one line every `everyMs`
 * saying how often it failed, and one line when the job works again (found from outside: a line every 5 s
 * on a full disk, ~17 000 a day in the journal).
 */
export function steadyFailure(log: Logger, what: string, everyMs = 10 * 60_000): SteadyFailure {
  let failures = 0;
  let loggedAt = 0;
  return {
    failed(err) {
      failures++;
      const now = Date.now();
      if (failures > 1 && now - loggedAt < everyMs) return;
      loggedAt = now;
      if (failures === 1) log.error(`${what} failed`, { err });
      else log.error(`${what} still failing`, { err, failures });
    },
    ok() {
      if (failures > 0) log.info(`${what} works again`, { failures });
      failures = 0;
    },
  };
}
