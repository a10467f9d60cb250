/** Random identifiers and secrets. Everything here uses crypto.getRandomValues. */

const adjectives = [
  "brave",
  "calm",
  "clever",
  "bold",
  "bright",
  "swift",
  "quiet",
  "steady",
  "keen",
  "proud",
  "gentle",
  "lucky",
  "sunny",
  "noble",
  "rapid",
  "silent",
  "solid",
  "eager",
  "fresh",
  "jolly",
  "amber",
  "azure",
  "coral",
  "crimson",
  "golden",
  "ivory",
  "jade",
  "olive",
  "silver",
  "violet",
];
const animals = [
  "otter",
  "falcon",
  "badger",
  "lynx",
  "heron",
  "beaver",
  "marten",
  "osprey",
  "bison",
  "ibex",
  "raven",
  "walrus",
  "gecko",
  "koala",
  "panda",
  "tiger",
  "whale",
  "zebra",
  "moose",
  "eagle",
  "fox",
  "hare",
  "wolf",
  "crane",
  "finch",
  "owl",
  "seal",
  "yak",
  "newt",
  "mole",
];
const alnum = "abcdefghijkmnpqrstuvwxyz23456789"; // 32 symbols, no look-alikes (l, o, 0, 1)

function pick<T>(list: readonly T[]): T {
  return list[randomInt(list.length)]!;
}

/** randomInt: uniform in [0, n) without modulo bias. */
export function randomInt(n: number): number {
  const limit = Math.floor(0x1_0000_0000 / n) * n;
  const buf = new Uint32Array(1);
  for (;;) {
    crypto.getRandomValues(buf);
    if (buf[0]! < limit) return buf[0]! % n;
  }
}

function randomString(alphabet: string, length: number): string {
  let s = "";
  for (let i = 0; i < length; i++) s += alphabet[randomInt(alphabet.length)];
  return s;
}

/** randomName: readable and unlikely to collide, e.g. `brave-otter-7f3k`. */
export function randomName(): string {
  return `${pick(adjectives)}-${pick(animals)}-${randomString(alnum, 4)}`;
}

/** randomUsername: a random name behind a prefix, e.g. `mqtt-brave-otter-7f3k`. */
export function randomUsername(prefix: string): string {
  return `${prefix}-${randomName()}`;
}

/** generatedName: the random part of a username this module made (`mqtt-brave-otter-7f3k`, `plant/brave-otter-7f3k`). */
export function generatedName(username: string): string | undefined {
  return /^(?:[a-z]+-|[^/+#$]+\/)([a-z]+-[a-z]+-[a-z2-9]{4})$/.exec(username)?.[1];
}

/** randomPassword: 26 symbols of a 58-symbol alphabet = 152 bits (at least 128 are needed to resist offline guessing). */
export function randomPassword(): string {
  return randomString("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_", 26);
}

/** randomToken: URL-safe, 256 bits. */
export function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Buffer.from(bytes).toString("base64url");
}

export function sha256Hex(text: string): string {
  return new Bun.CryptoHasher("sha256").update(text).digest("hex");
}
