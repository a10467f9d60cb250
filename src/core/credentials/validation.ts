import { isIntegrationType, typeListText } from "../types.ts";

export const usernamePattern = /^[A-Za-z0-9._\-@/:]{1,128}$/;
export const usernameRule = "1-128 characters: letters, digits and . _ - @ / :";
export const maxDescription = 1024;
const unsafeText = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F\u202A-\u202E\u2066-\u2069]/;

/** validateFields: every field rule, collected so a form can show them all at once. */
export function validateFields(input: {
  username?: unknown;
  password?: unknown;
  description?: unknown;
  type?: unknown;
}) {
  const fields: Record<string, string> = {};
  if (input.type !== undefined && !isIntegrationType(input.type)) fields.type = `type must be one of ${typeListText}`;
  if (input.username !== undefined && (typeof input.username !== "string" || !usernamePattern.test(input.username))) {
    fields.username = `username must be ${usernameRule}`;
  }
  if (input.password !== undefined) {
    if (typeof input.password !== "string" || input.password.length < 8 || input.password.length > 256) {
      fields.password = "password must be 8-256 characters";
    }
  }
  if (
    input.description !== undefined &&
    (typeof input.description !== "string" || input.description.length > maxDescription)
  ) {
    fields.description = `description must be at most ${maxDescription} characters`;
  } else if (typeof input.description === "string" && unsafeText.test(input.description)) {
    // NUL and control characters (ANSI escapes in a terminal listing), bidi overrides (text that reads
    // differently from what it is)
    fields.description = "description must not contain control characters or bidirectional overrides";
  }
  return fields;
}

/** isValidTopicFilter: MQTT 3.1.1 §4.7.1: `#` only last and alone in its level, `+` alone in its level. */
export function isValidTopicFilter(filter: string): boolean {
  if (filter.length === 0 || filter.length > 65535 || filter.includes("\0")) return false;
  const levels = filter.split("/");
  return levels.every((level, i) => {
    if (level.includes("#")) return level === "#" && i === levels.length - 1;
    if (level.includes("+")) return level === "+";
    return true;
  });
}

/** parseStoredFilters: a JSON array of topic filters as stored in a row; a corrupt value denies rather than allows. */
export function parseStoredFilters(json: string): string[] {
  try {
    const v = JSON.parse(json);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
}
