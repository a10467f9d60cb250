/** exitCodes: what the process's exit status means (also listed in --help). */
export const exitCodes = {
  ok: 0,
  /** runtime failure: a port in use, a listener that could not start, an I/O error */
  failure: 1,
  /** bad usage or configuration: unknown flag, bad value, unusable data dir, invalid input */
  usage: 2,
} as const;
