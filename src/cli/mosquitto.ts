import { hashProblem, isMosquittoHash } from "../core/credentials/hashing.ts";
import { validateFields } from "../core/credentials/validation.ts";
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

/** maxMosquittoFileBytes: a password or ACL file larger than this is refused unread (16 MiB: some 100 000 users). */
export const maxMosquittoFileBytes = 16 * 1024 * 1024;

/** shown: a name from a file as it may appear in a message: quoted and escaped (no terminal escapes), bounded. */
const shown = (text: string) => JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);

/**
 * parseMosquittoPasswd: `user:$7$...` lines (mosquitto_passwd 2.x) or `$6$` (1.x); comments and blanks
 * skipped. A file from outside: every line is checked (name, hash format, salt and hash lengths, an
 * iteration count within `hashLimits`, no name twice) and any refusal refuses the whole file, listing
 * each bad line by number, so nothing is imported from a file that is partly wrong.
 */
export function parseMosquittoPasswd(text: string): { username: string; passwordHash: string; line: number }[] {
  const out: { username: string; passwordHash: string; line: number }[] = [];
  const problems: string[] = [];
  const seen = new Map<string, number>();
  for (const [n, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const at = `line ${n + 1}`;
    const i = line.indexOf(":");
    if (i <= 0) {
      problems.push(`${at}: expected user:$7$... (hashed with mosquitto_passwd)`);
      continue;
    }
    const username = line.slice(0, i);
    const passwordHash = line.slice(i + 1);
    const nameProblem = validateFields({ username }).username;
    if (nameProblem) problems.push(`${at}: ${shown(username)}: ${nameProblem}`);
    if (!isMosquittoHash(passwordHash))
      problems.push(
        `${at}: ${shown(username)}: not a $7$ or $6$ hash (a plain-text file? hash it with mosquitto_passwd -U first)`,
      );
    else {
      const problem = hashProblem(passwordHash);
      if (problem) problems.push(`${at}: ${shown(username)}: ${problem}`);
    }
    const before = seen.get(username);
    if (before !== undefined) problems.push(`${at}: ${shown(username)} is already on line ${before}`);
    else seen.set(username, n + 1);
    out.push({ username, passwordHash, line: n + 1 });
  }
  if (problems.length) {
    const more = problems.length > 50 ? `\n  and ${problems.length - 50} more` : "";
    throw new ValidationError({
      file: `password file refused, nothing imported (${problems.length} problem(s)):\n  ${problems.slice(0, 50).join("\n  ")}${more}`,
    });
  }
  if (out.length === 0) throw new ValidationError({ file: "the password file holds no users" });
  return out;
}

/**
 * mapMosquittoAcl: `user NAME` blocks of `topic [read|write|readwrite|deny] FILTER`, and `pattern`
 * lines with `%u` applied to every user. What has no Gatehouse equivalent (topics for anonymous
 * clients, `%c` client-id patterns) is returned in `unmapped` with its line, never dropped silently.
 */
export function mapMosquittoAcl(
  text: string,
  usernames: string[],
): { acl: Map<string, Omit<MosquittoUser, "username" | "passwordHash">>; unmapped: string[] } {
  const acl = new Map(
    usernames.map((u) => [
      u,
      {
        publishAcl: [] as string[],
        subscribeAcl: [] as string[],
        denyPublishAcl: [] as string[],
        denySubscribeAcl: [] as string[],
      },
    ]),
  );
  const unmapped: string[] = [];
  let user: string | undefined;
  let anonymous = true;
  const grant = (target: typeof acl extends Map<string, infer V> ? V : never, access: string, filter: string) => {
    if (access === "read" || access === "readwrite") target.subscribeAcl.push(filter);
    if (access === "write" || access === "readwrite") target.publishAcl.push(filter);
    if (access === "deny") target.denyPublishAcl.push(filter), target.denySubscribeAcl.push(filter);
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
