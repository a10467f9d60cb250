/**
 * The verbs' usage, one source for `gatehouse --help` (every verb, then serve's options) and for
 * `gatehouse VERB --help` (that verb's lines and where its data dir comes from). No imports: a verb's help
 * loads nothing else.
 */

/** asked: this argument asks for the usage (where the verb goes, the verb's arguments are all of them) */
export const asked = (arg: string | undefined) => arg === "--help" || arg === "-h";

/** isServe: do these arguments (the program's own left out) run the server, not a verb, help or the version? */
export function isServe(args: readonly string[]): boolean {
  const v = args[0];
  return (v === undefined || v === "serve" || (v.startsWith("-") && v !== "--version")) && !args.some(asked);
}

/** verbUsage: each verb's lines of the usage, in the order `gatehouse --help` lists them. */
export const verbUsage = {
  admin: `  gatehouse admin set-password [--username NAME] [--read-only] [--data-dir DIR]
                                           read a new admin password from stdin
  gatehouse admin list | set-role NAME full|read-only | reset-2fa NAME [--data-dir DIR]`,
  integrations: `  gatehouse integrations list [--type T] [--json]
  gatehouse integrations add --type T [--username U] [--password-stdin] [--description D] [--json]
  gatehouse integrations remove|enable|disable USERNAME [--json]
  gatehouse integrations permissions USERNAME [--publish F,...] [--subscribe F,...]
                                           [--deny-publish F,...] [--deny-subscribe F,...] [--json]
  gatehouse integrations import FILE [--json]   CSV or JSON array: type, username, password, description,
                                           active, publishAcl, subscribeAcl, denyPublishAcl, denySubscribeAcl
  gatehouse integrations import --mosquitto-passwd FILE [--mosquitto-acl FILE] [--type T]`,
  onboarding: `  gatehouse onboarding open [--minutes N] [--type T ...] | close | list | approve ID [ID ...]
                                           [--description D] [--json]`,
  uplinks: `  gatehouse uplinks add NAME --url URL[,URL...] --forward FILTER[,...] [--username U] [--password-stdin]
                 [--ca FILE] [--client-cert FILE --client-key FILE] [--client-id ID] [--protocol 4|5]
                 [--remote-prefix P] [--subscribe FILTER[,...] --local-prefix P] [--qos 0|1]
                 [--inflight N] [--inventory] [--json]
  gatehouse uplinks list | status [NAME] | enable NAME | disable NAME | remove NAME   [--json]`,
  bans: `  gatehouse bans list | add --address A|--client-id C|--username U [--minutes N] | remove ID [--json]
                                           A: an IP address or CIDR block; N: 1-525600 (default 60)`,
  backup: `  gatehouse backup FILE [--data-dir DIR]   a consistent copy of gatehouse.db, while the appliance runs`,
  restore: `  gatehouse restore FILE [--data-dir DIR]  a backup put back, checked first (the appliance stopped)`,
  export: `  gatehouse export [--full] [FILE]         integrations (with their password hashes), permissions,
                                           certificates and uplinks as JSON (stdout without FILE or with -);
                                           --full: the uplinks' passwords and client keys too`,
  import: `  gatehouse import --full FILE             an export --full into this data dir (the appliance stopped)`,
  version: "  gatehouse version",
} as const;

/** Verb: a verb with lines of its own in the usage. */
export type Verb = keyof typeof verbUsage;

/** dataDirNote: where every verb but serve finds its data dir. */
export const dataDirNote = `Every verb but serve works on an existing data dir: --data-dir DIR or GATEHOUSE_DATA_DIR (default
./data; the systemd service's is /var/lib/gatehouse). restore and import --full need the appliance stopped.`;

/** verbLines: `verb`'s lines of the usage ("usage:" first), or where to find them for a verb without any */
export function verbLines(verb: string): string {
  return Object.hasOwn(verbUsage, verb)
    ? `usage:\n${verbUsage[verb as Verb]}`
    : `usage: gatehouse ${verb} ... (gatehouse --help lists every verb)`;
}

/** verbHelp: what `gatehouse VERB --help` prints: the verb's lines, where its data dir is, the exit codes. */
export function verbHelp(verb: string): string {
  return `${verbLines(verb)}\n\n${dataDirNote}\nExit codes: 0 ok, 1 runtime failure, 2 bad usage.\n`;
}

/** usage: what `gatehouse --help` prints: every verb, then `serveOptions` (serve's options, from config). */
export function usage(serveOptions: string): string {
  return `gatehouse — who may connect to this device (MQTT, OPC UA, HTTP, VRPC)

Usage:
  gatehouse [serve] [options]              run the appliance (default)
${Object.values(verbUsage).join("\n")}

${dataDirNote}

${serveOptions}`;
}
