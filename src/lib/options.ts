/** OptionSpec: how a flag is spelled, its environment twin and its default. */
export interface OptionSpec {
  flag: string;
  env: string;
  help: string;
  default?: string;
  /**
   * an old name kept so that a unit file written for an earlier release still starts: the option
   * parses, and the appliance logs this sentence at start (`--help` lists it as deprecated)
   */
  deprecated?: string;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** OptionReader: the value of one option after precedence (flag, then environment, then default). */
export type OptionReader = (key: string) => string | undefined;

export function parsePort(name: string, raw: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) > 65535) throw new ConfigError(`--${name} must be a port number 0-65535, got "${raw}"`);
  return Number(raw);
}

/** parsePortOrOff: `off` switches a listener off (null). */
export function parsePortOrOff(name: string, raw: string): number | null {
  return raw === "off" ? null : parsePort(name, raw);
}

export function parseCount(name: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max) throw new ConfigError(`--${name} must be a whole number ${min}-${max}, got "${raw}"`);
  return n;
}

export function parseBool(name: string, raw: string): boolean {
  if (raw !== "true" && raw !== "false") throw new ConfigError(`--${name} must be true or false, got "${raw}"`);
  return raw === "true";
}
