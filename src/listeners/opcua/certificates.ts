import type { OPCUACertificateManager } from "node-opcua-certificate-manager";
import { convertPEMtoDER, exploreCertificate, makeSHA1Thumbprint } from "node-opcua-crypto";
import { readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { CertificateInfo, CertificateTrust } from "../../core/certificates.ts";
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
      const subject = Object.entries(tbs.subject ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(", ");
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

/** certificateTrust: the page's view of node-opcua's PKI folders under the data dir. */
export function certificateTrust(cm: OPCUACertificateManager): CertificateTrust {
  const all = async () => [...(await readFolder(cm.rejectedFolder, "rejected")), ...(await readFolder(cm.trustedFolder, "trusted"))];
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
      await cm.rejectCertificate((await find(thumbprint, "trusted")).der);
    },
    async remove(thumbprint) {
      await rm((await find(thumbprint, "rejected")).file, { force: true });
    },
  };
}
