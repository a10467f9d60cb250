import { isValidTopicFilter, type NewIntegration, validateFields } from "../core/credentials.ts";
import { isIntegrationType, typeListText } from "../core/types.ts";
import { ValidationError } from "../lib/errors.ts";
import { readBounded } from "../lib/files.ts";

/**
 * maxImportFileBytes: a CSV or JSON file for `integrations import` larger than this is refused unread
 * (16 MiB, like a Mosquitto password file: 10 000 entries, the most one import takes, need far less).
 */
export const maxImportFileBytes = 16 * 1024 * 1024;
/** maxImportEntries: integrations one `integrations import` creates at most. */
export const maxImportEntries = 10_000;

/**
 * importFields: what an entry may say, the fields `POST /api/v1/integrations` takes; anything else is
 * refused with its entry or line (a misspelt `usrname` or `publishACL` used to be dropped silently: a
 * random name, the default `#`).
 */
const importFields = [
  "type",
  "username",
  "password",
  "description",
  "active",
  "publishAcl",
  "subscribeAcl",
  "denyPublishAcl",
  "denySubscribeAcl",
] as const;
type ImportField = (typeof importFields)[number];
const aclFields = ["publishAcl", "subscribeAcl", "denyPublishAcl", "denySubscribeAcl"] as const;
const fieldsText = importFields.join(", ");

/** shown: a name from a file as a message may show it: quoted, escaped, bounded. */
const shown = (text: string) => JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);

/** readImportFile: a regular file of at most `maxImportFileBytes`, UTF-8 (a FIFO or device is refused before reading). */
export function readImportFile(path: string): string {
  let bytes: Buffer;
  try {
    bytes = readBounded(path, maxImportFileBytes);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ValidationError({ file: code === "ENOENT" ? `no such file: ${path}` : (err as Error).message });
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes).replace(/^\uFEFF/, "");
  } catch {
    throw new ValidationError({ file: `${path} is not UTF-8 text` });
  }
}

interface Entry {
  /** where it is, for messages: `entry 3` (JSON) or `line 7` (CSV) */
  at: string;
  values: Partial<Record<ImportField, unknown>>;
  unknown: string[];
}

/**
 * parseImport: a JSON array of objects, or CSV whose header names the columns (any of `importFields`,
 * case-insensitive; `type` required). Every entry is checked (known fields only, each of its kind,
 * names, passwords and topic filters by the rules `create` applies, no name twice) and every problem
 * is listed with its entry or line; any refuses the whole file.
 */
export function parseImport(text: string, name: string): NewIntegration[] {
  const json = name.toLowerCase().endsWith(".json") || text.trimStart().startsWith("[");
  const entries = json ? jsonEntries(text) : csvEntries(text);
  if (entries.length === 0) throw new ValidationError({ file: "the file holds no entries" });
  if (entries.length > maxImportEntries)
    throw new ValidationError({ file: `${entries.length} entries; at most ${maxImportEntries} per import` });
  const problems: string[] = [];
  const out: NewIntegration[] = [];
  const seen = new Map<string, string>();
  for (const { at, values: v, unknown } of entries) {
    const p: string[] = unknown.map((k) => `unknown field ${shown(k)} (the fields are ${fieldsText})`);
    if (!isIntegrationType(v.type)) p.push(`type must be one of ${typeListText}`);
    for (const k of ["username", "password", "description"] as const)
      if (v[k] !== undefined && typeof v[k] !== "string") p.push(`${k} must be text`);
    if (v.active !== undefined && typeof v.active !== "boolean") p.push("active must be true or false");
    for (const k of aclFields)
      if (v[k] !== undefined && !(Array.isArray(v[k]) && v[k].every((f) => typeof f === "string")))
        p.push(`${k} must be a list of topic filters`);
    const text = (k: "username" | "password" | "description") =>
      typeof v[k] === "string" && v[k] !== "" ? v[k] : undefined;
    const entry: NewIntegration = {
      type: v.type as NewIntegration["type"],
      username: text("username"),
      password: text("password"),
      description: text("description"),
      active: v.active as boolean | undefined,
    };
    for (const k of aclFields) if (Array.isArray(v[k])) entry[k] = v[k] as string[];
    if (p.length === 0) {
      p.push(...Object.values(validateFields({ username: entry.username, password: entry.password })));
      if (entry.description !== undefined) p.push(...Object.values(validateFields({ description: entry.description })));
      for (const k of aclFields) {
        const filters = entry[k];
        if (filters && (filters.length > 100 || !filters.every(isValidTopicFilter)))
          p.push(`${k}: each entry must be a valid MQTT topic filter (at most 100)`);
      }
    }
    if (typeof entry.username === "string") {
      const before = seen.get(entry.username);
      if (before) p.push(`username ${shown(entry.username)} is already in ${before}`);
      else seen.set(entry.username, at);
    }
    if (p.length) problems.push(`${at}: ${p.join("; ")}`);
    else out.push(entry);
  }
  if (problems.length) {
    const more = problems.length > 50 ? `\n  and ${problems.length - 50} more` : "";
    throw new ValidationError({
      file: `${problems.length} problem(s), nothing imported:\n  ${problems.slice(0, 50).join("\n  ")}${more}`,
    });
  }
  return out;
}

function jsonEntries(text: string): Entry[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ValidationError({ file: `not valid JSON: ${(err as Error).message}` });
  }
  if (!Array.isArray(data)) throw new ValidationError({ file: "JSON must be an array of objects" });
  return data.map((x, i) => {
    const at = `entry ${i + 1}`;
    if (typeof x !== "object" || x === null || Array.isArray(x))
      return { at, values: {}, unknown: ["(not an object)"] };
    const values: Entry["values"] = {};
    const unknown: string[] = [];
    for (const [k, v] of Object.entries(x))
      if ((importFields as readonly string[]).includes(k)) values[k as ImportField] = v;
      else unknown.push(k);
    return { at, values, unknown };
  });
}

function csvEntries(text: string): Entry[] {
  const { header, rows } = parseCsvTable(text);
  if (!header) return [];
  const byLowerName = new Map(importFields.map((f) => [f.toLowerCase(), f]));
  const columns = header.fields.map((h) => byLowerName.get(h.trim().toLowerCase()));
  const problems: string[] = [];
  header.fields.forEach((h, i) => {
    if (!columns[i]) problems.push(`unknown column ${shown(h)}`);
    else if (columns.indexOf(columns[i]) !== i) problems.push(`column ${shown(h)} appears twice`);
  });
  if (!columns.includes("type")) problems.push("no type column");
  if (problems.length)
    throw new ValidationError({
      file: `line ${header.line} (the header): ${problems.join("; ")}; the columns are ${fieldsText} (type required), nothing imported`,
    });
  return rows.map(({ line, fields }) => {
    const values: Entry["values"] = {};
    const unknown: string[] = [];
    if (fields.length > columns.length)
      unknown.push(`(${fields.length - columns.length} value(s) past the header's ${columns.length} columns)`);
    columns.forEach((column, i) => {
      const cell = fields[i] ?? "";
      if (column === "active") {
        const word = cell.trim().toLowerCase();
        values.active = word === "" ? undefined : word === "true" ? true : word === "false" ? false : cell;
      } else if ((aclFields as readonly string[]).includes(column!)) {
        // a list in one cell: filters separated by spaces or commas (quote the cell for commas); empty: the default
        values[column!] = cell.trim() === "" ? undefined : cell.split(/[\s,]+/).filter(Boolean);
      } else values[column!] = cell;
    });
    return { at: `line ${line}`, values, unknown };
  });
}

interface CsvRecord {
  /** the line the record starts on (1-based) */
  line: number;
  fields: string[];
}

/**
 * parseCsvTable: RFC 4180 (quoted fields, doubled quotes, line breaks inside quotes, CRLF or LF), in
 * one pass that cuts each field out of the text with indexOf and slice: time and memory linear in
 * the file (a 50 MB field built character by character took 1.8 GB). Blank lines are skipped; the
 * first record is the header. An unclosed quote, or text after a closing quote, is refused.
 */
export function parseCsvTable(text: string): { header?: CsvRecord; rows: CsvRecord[] } {
  const records: CsvRecord[] = [];
  const n = text.length;
  let i = 0;
  let line = 1;
  while (i < n) {
    const start = line;
    const fields: string[] = [];
    for (;;) {
      let field: string;
      if (text.charCodeAt(i) === 34 /* " */) {
        const parts: string[] = [];
        let j = i + 1;
        for (;;) {
          const q = text.indexOf('"', j);
          if (q < 0) throw new ValidationError({ file: `line ${start}: a quoted field is never closed` });
          parts.push(text.slice(j, q));
          if (text.charCodeAt(q + 1) === 34) {
            parts.push('"');
            j = q + 2;
            continue;
          }
          i = q + 1;
          break;
        }
        field = parts.join("");
        for (let k = field.indexOf("\n"); k >= 0; k = field.indexOf("\n", k + 1)) line++;
        const c = text.charCodeAt(i);
        if (i < n && c !== 44 && c !== 10 && c !== 13)
          throw new ValidationError({
            file: `line ${line}: text after a closing quote (double a quote inside quotes)`,
          });
      } else {
        let j = i;
        for (; j < n; j++) {
          const c = text.charCodeAt(j);
          if (c === 44 || c === 10 || c === 13) break;
        }
        field = text.slice(i, j);
        i = j;
      }
      fields.push(field);
      if (i >= n) break;
      if (text.charCodeAt(i) === 44 /* , */) {
        i++;
        continue;
      }
      i += text.charCodeAt(i) === 13 && text.charCodeAt(i + 1) === 10 ? 2 : 1; // CRLF, LF or CR
      line++;
      break;
    }
    if (fields.some((f) => f !== "")) records.push({ line: start, fields });
  }
  const [header, ...rows] = records;
  return { header, rows };
}

/** parseCsv: the records after the header as objects keyed by the header's names (lowercased, trimmed). */
export function parseCsv(text: string): Record<string, string>[] {
  const { header, rows } = parseCsvTable(text);
  if (!header) return [];
  const names = header.fields.map((h) => h.trim().toLowerCase());
  return rows.map(({ fields }) => Object.fromEntries(names.map((name, i) => [name, fields[i] ?? ""])));
}
