import { ValidationError } from "../lib/errors.ts";

/** MosquittoUser: one line of a Mosquitto password file, with what its ACL file grants it. */
export interface MosquittoUser {
  username: string;
  passwordHash: string;
  publishAcl: string[];
  subscribeAcl: string[];
  denyPublishAcl: string[];
  denySubscribeAcl: string[];
}

/** parseMosquittoPasswd: `user:$7$...` lines (mosquitto_passwd 2.x) or `$6$` (1.x); comments and blanks skipped. */
export function parseMosquittoPasswd(text: string): { username: string; passwordHash: string }[] {
  const out: { username: string; passwordHash: string }[] = [];
  for (const [n, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const i = line.indexOf(":");
    const username = line.slice(0, i);
    const passwordHash = line.slice(i + 1);
    if (i <= 0 || !/^\$[67]\$/.test(passwordHash)) throw new ValidationError({ file: `password file line ${n + 1}: expected user:$7$... (hashed with mosquitto_passwd)` });
    out.push({ username, passwordHash });
  }
  return out;
}

/**
 * mapMosquittoAcl: `user NAME` blocks of `topic [read|write|readwrite|deny] FILTER`, and `pattern`
 * lines with `%u` applied to every user. What has no Gatehouse equivalent (topics for anonymous
 * clients, `%c` client-id patterns) is returned in `unmapped` with its line, never dropped silently.
 */
export function mapMosquittoAcl(text: string, usernames: string[]): { acl: Map<string, Omit<MosquittoUser, "username" | "passwordHash">>; unmapped: string[] } {
  const acl = new Map(usernames.map((u) => [u, { publishAcl: [] as string[], subscribeAcl: [] as string[], denyPublishAcl: [] as string[], denySubscribeAcl: [] as string[] }]));
  const unmapped: string[] = [];
  let user: string | undefined;
  let anonymous = true;
  const grant = (target: typeof acl extends Map<string, infer V> ? V : never, access: string, filter: string) => {
    if (access === "read" || access === "readwrite") target.subscribeAcl.push(filter);
    if (access === "write" || access === "readwrite") target.publishAcl.push(filter);
    if (access === "deny") (target.denyPublishAcl.push(filter), target.denySubscribeAcl.push(filter));
  };
  for (const [n, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const words = line.split(/\s+/);
    const [kind] = words;
    if (kind === "user") {
      user = words.slice(1).join(" ");
      anonymous = false;
      continue;
    }
    if (kind !== "topic" && kind !== "pattern") {
      unmapped.push(`line ${n + 1}: ${line}`);
      continue;
    }
    const access = ["read", "write", "readwrite", "deny"].includes(words[1] ?? "") ? words[1]! : "readwrite";
    const filter = words.slice(access === words[1] ? 2 : 1).join(" ");
    if (kind === "pattern") {
      if (filter.includes("%c")) {
        unmapped.push(`line ${n + 1}: ${line} (client-id patterns have no equivalent)`);
        continue;
      }
      for (const [name, target] of acl) grant(target, access, filter.replaceAll("%u", name));
      continue;
    }
    if (anonymous) {
      unmapped.push(`line ${n + 1}: ${line} (for anonymous clients, which Gatehouse does not admit)`);
      continue;
    }
    const target = acl.get(user!);
    if (!target) {
      unmapped.push(`line ${n + 1}: ${line} (user ${user} is not in the password file)`);
      continue;
    }
    grant(target, access, filter);
  }
  return { acl, unmapped };
}
