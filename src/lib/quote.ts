/** shellQuote: a value inside single quotes for a POSIX shell (a name may hold any allowed character). */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`;
}

/** jsString: a value as a JavaScript string literal, for code snippets. */
export function jsString(value: string): string {
  return `'${value.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}
