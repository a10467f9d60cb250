/**
 * Options are declared once, as a property of an option set: its name (`mqttMaxPacket`) gives the
 * flag (`--mqtt-max-packet`) and the environment variable (`GATEHOUSE_MQTT_MAX_PACKET`); its kind gives
 * the parse, the error message and the `--help` line. Readers get typed values, never strings.
 */

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Option: one option of `serve`: how its value looks in `--help`, its default, and its parse. */
export interface Option<T> {
  readonly help: string;
  /** what the value looks like in `--help` (N, BOOL, FILE, ...) */
  readonly metavar: string;
  readonly default?: string;
  /**
   * an old name kept so that a unit file written for an earlier release still starts: the option
   * parses, and the appliance logs this sentence at start (`--help` lists it as deprecated)
   */
  readonly deprecated?: string;
  /** parse: the value (raw: flag, else environment, else the default; undefined when none); throws ConfigError */
  parse(raw: string | undefined, flag: string): T;
}

/** OptionSet: options by name (camelCase; the flag and the environment variable derive from it). */
export type OptionSet = Record<string, Option<unknown>>;

/** OptionValues: what an option set parses to, typed per option. */
export type OptionValues<S extends OptionSet> = { readonly [K in keyof S]: S[K] extends Option<infer T> ? T : never };

const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** flagOf: `mqttMaxPacket` -> `--mqtt-max-packet`. */
export const flagOf = (name: string) => `--${kebab(name)}`;

/** envOf: `mqttMaxPacket` -> `GATEHOUSE_MQTT_MAX_PACKET`. */
export const envOf = (name: string) => `GATEHOUSE_${kebab(name).replace(/-/g, "_").toUpperCase()}`;

const required = (raw: string | undefined, flag: string) => {
  if (raw === undefined) throw new ConfigError(`${flag} needs a value`);
  return raw;
};

function portValue(raw: string, flag: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) > 65535)
    throw new ConfigError(`${flag} must be a port number 0-65535, got "${raw}"`);
  return Number(raw);
}

/** option: the kinds of option, each with its parse and its error message. */
export const option = {
  /** a port; `off` switches its listener off (null), 0 picks a free one */
  port: (help: string, def: string): Option<number | null> => ({
    help: `${help} (0 = any free port, off = none)`,
    metavar: "N",
    default: def,
    parse: (raw, flag) => (required(raw, flag) === "off" ? null : portValue(raw!, flag)),
  }),
  /** a whole number in [min, max] */
  count: (help: string, def: string | undefined, min: number, max: number, metavar = "N"): Option<number> => ({
    help,
    metavar,
    default: def,
    parse(raw, flag) {
      const text = required(raw, flag);
      const n = Number(text);
      if (!/^\d+$/.test(text) || n < min || n > max)
        throw new ConfigError(`${flag} must be a whole number ${min}-${max}, got "${text}"`);
      return n;
    },
  }),
  bool: (help: string, def: "true" | "false"): Option<boolean> => ({
    help,
    metavar: "BOOL",
    default: def,
    parse(raw, flag) {
      const text = required(raw, flag);
      if (text !== "true" && text !== "false") throw new ConfigError(`${flag} must be true or false, got "${text}"`);
      return text === "true";
    },
  }),
  /** one of a fixed list of words */
  oneOf: <const C extends readonly string[]>(help: string, choices: C, def: C[number]): Option<C[number]> => ({
    help: `${help} (${choices.join(" | ")})`,
    metavar: "WORD",
    default: def,
    parse(raw, flag) {
      const text = required(raw, flag);
      if (!choices.includes(text))
        throw new ConfigError(`${flag} must be ${choices.slice(0, -1).join(", ")} or ${choices.at(-1)}, got "${text}"`);
      return text as C[number];
    },
  }),
  /** free text (a path, an address); undefined when not given and without default */
  text: <D extends string | undefined = undefined>(
    help: string,
    metavar: string,
    def?: D,
  ): Option<D extends string ? string : string | undefined> => ({
    help,
    metavar,
    default: def,
    parse: (raw) => raw as D extends string ? string : string | undefined,
  }),
  /** anything else: the parse is the option's own */
  custom: <T>(
    help: string,
    metavar: string,
    parse: (raw: string | undefined, flag: string) => T,
    def?: string,
  ): Option<T> => ({ help, metavar, default: def, parse }),
  /** an old name, parsed like `like`, that logs `sentence` when given */
  deprecated: <T>(like: Option<T>, help: string, sentence: string): Option<T | undefined> => ({
    help,
    metavar: like.metavar,
    deprecated: sentence,
    parse: (raw, flag) => (raw === undefined ? undefined : like.parse(raw, flag)),
  }),
};

/** Given: the value set by flag or environment for an option name, if any (defaults are the set's). */
export type Given = (name: string) => string | undefined;

/** readOptions: parses every option of a set from what was given, defaults filling the rest. */
export function readOptions<S extends OptionSet>(set: S, given: Given): OptionValues<S> {
  const out: Record<string, unknown> = {};
  for (const [name, o] of Object.entries(set)) out[name] = o.parse(given(name) ?? o.default, flagOf(name));
  return out as OptionValues<S>;
}

/** helpLine: one option as `--help` lists it: flag, environment variable and default, then what it does. */
export function helpLine(name: string, o: Option<unknown>): string {
  const fallback = o.default !== undefined ? `, default ${o.default}` : "";
  return `  ${flagOf(name)} ${o.metavar}   (${envOf(name)}${fallback})\n      ${o.help}`;
}
