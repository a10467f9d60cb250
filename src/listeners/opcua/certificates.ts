import type { OPCUACertificateManager } from "node-opcua-certificate-manager";
import { convertPEMtoDER, exploreCertificate, makeSHA1Thumbprint } from "node-opcua-crypto";
import { readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { CertificateInfo, CertificateTrust } from "./trust.ts";
import { NotFoundError } from "../../lib/errors.ts";

interface Entry extends CertificateInfo {
  file: string;
  der: Buffer;
}

async function readFolder(folder: string, status: CertificateInfo["status"]): Promise<Entry[]> {
  let names: string[];
  try {
    names = await readdir(folder);
  } catch {
    return [];
  }
  const out: Entry[] = [];
  for (const name of names) {
    if (!/\.(pem|der)$/i.test(name)) continue;
    const file = join(folder, name);
    try {
      const raw = await readFile(file);
      const der = name.toLowerCase().endsWith(".pem") ? convertPEMtoDER(raw.toString("utf8")) : raw;
      const info = exploreCertificate(der);
      const tbs = info.tbsCertificate;
      const subject = formatSubject(tbs.subject as unknown as Record<string, unknown>);
      const uri = tbs.extensions?.subjectAltName?.uniformResourceIdentifier?.[0] ?? "";
      out.push({
        file,
        der,
        status,
        thumbprint: makeSHA1Thumbprint(der).toString("hex"),
        subject,
        applicationUri: uri,
        firstSeen: (await stat(file)).mtimeMs,
        validTo: tbs.validity?.notAfter ? new Date(tbs.validity.notAfter).getTime() : null,
      });
    } catch {
      // not a certificate we can read; left alone
    }
  }
  return out;
}

/**
 * trimFolder: keeps the newest `max` certificate files of a folder (node-opcua files every refused
 * client certificate in `rejected/`; anonymous scanners would fill the disk). Returns how many went.
 */
export async function trimFolder(folder: string, max: number): Promise<number> {
  let names: string[];
  try {
    names = (await readdir(folder)).filter((n) => /\.(pem|der)$/i.test(n));
  } catch {
    return 0;
  }
  if (names.length <= max) return 0;
  const dated = await Promise.all(
    names.map(async (n) => ({ n, t: (await stat(join(folder, n)).catch(() => undefined))?.mtimeMs ?? 0 })),
  );
  dated.sort((a, b) => b.t - a.t);
  const old = dated.slice(max);
  await Promise.all(old.map(({ n }) => rm(join(folder, n), { force: true })));
  return old.length;
}

/** subjectKeys: X.500 attribute names as people read them in a certificate subject. */
const subjectKeys: [string, string][] = [
  ["commonName", "CN"],
  ["organizationName", "O"],
  ["organizationalUnitName", "OU"],
  ["localityName", "L"],
  ["stateOrProvinceName", "ST"],
  ["countryName", "C"],
  ["domainComponent", "DC"],
];

/** formatSubject: `CN=…, O=…` from node-opcua-crypto's subject object (which also carries raw `entries`). */
export function formatSubject(subject: Record<string, unknown> | undefined): string {
  if (!subject) return "";
  const parts: string[] = [];
  for (const [key, short] of subjectKeys) {
    const v = subject[key];
    if (typeof v === "string" && v) parts.push(`${short}=${v}`);
    else if (Array.isArray(v)) for (const x of v) if (typeof x === "string") parts.push(`${short}=${x}`);
  }
  return parts.join(", ");
}

/** certificateTrust: the page's view of node-opcua's PKI folders under the data dir. */
export function certificateTrust(
  cm: OPCUACertificateManager,
  onRevoked: (thumbprint: string) => void = () => {},
): CertificateTrust {
  const all = async () => [
    ...(await readFolder(cm.rejectedFolder, "rejected")),
    ...(await readFolder(cm.trustedFolder, "trusted")),
  ];
  const find = async (thumbprint: string, status: CertificateInfo["status"]) => {
    const e = (await all()).find((c) => c.thumbprint === thumbprint.toLowerCase() && c.status === status);
    if (!e) throw new NotFoundError(`${status} certificate`);
    return e;
  };
  return {
    async list() {
      return (await all()).map(({ file: _f, der: _d, ...info }) => info).sort((a, b) => b.firstSeen - a.firstSeen);
    },
    async trust(thumbprint) {
      await cm.trustCertificate((await find(thumbprint, "rejected")).der);
    },
    async revoke(thumbprint) {
      const e = await find(thumbprint, "trusted");
      await cm.rejectCertificate(e.der);
      onRevoked(e.thumbprint); // channels already open with it end now, like sessions on a deactivate
    },
    async remove(thumbprint) {
      await rm((await find(thumbprint, "rejected")).file, { force: true });
    },
  };
}
