import { createPrivateKey, X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, watch, writeFileSync, type FSWatcher } from "node:fs";
import { hostname, networkInterfaces } from "node:os";
import { join } from "node:path";

/** TlsMaterial: the certificate and key every TLS listener serves (PEM), and what identifies them. */
export interface TlsMaterial {
  cert: string;
  key: string;
  /** SHA-256 fingerprint of the certificate, as `AA:BB:...` */
  fingerprint: string;
  /** where it came from: the files an admin named, or the self-signed pair in the data dir */
  source: "files" | "self-signed";
  certFile: string;
  keyFile: string;
}

/**
 * TlsSource: one certificate configuration for MQTT over TLS and HTTPS. Without `--tls-cert/--tls-key`
 * the appliance makes a self-signed certificate in `<data-dir>/tls/` on first start (SAN: host name,
 * localhost, every address). `reload()` (SIGHUP, or the files changing) re-reads them; listeners
 * subscribed with `onChange` swap contexts without dropping connections.
 */
export class TlsSource {
  #material: TlsMaterial | undefined;
  #handlers = new Set<(m: TlsMaterial) => void>();
  #watchers: FSWatcher[] = [];

  constructor(private readonly opts: { dataDir: string; certFile?: string; keyFile?: string }) {}

  get current(): TlsMaterial {
    if (!this.#material) throw new Error("TLS material is not loaded yet");
    return this.#material;
  }

  /** load: reads the configured files, or makes (once) and reads the self-signed pair. */
  async load(): Promise<TlsMaterial> {
    if (this.opts.certFile && this.opts.keyFile)
      return (this.#material = read(this.opts.certFile, this.opts.keyFile, "files"));
    const dir = join(this.opts.dataDir, "tls");
    const certFile = join(dir, "gatehouse.crt");
    const keyFile = join(dir, "gatehouse.key");
    if (!existsSync(certFile) || !existsSync(keyFile)) await makeSelfSigned(dir, certFile, keyFile);
    return (this.#material = read(certFile, keyFile, "self-signed"));
  }

  onChange(handler: (m: TlsMaterial) => void): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  /** reload: new files take effect for new connections; a broken pair is refused and the old one kept. */
  reload(): TlsMaterial {
    const m = this.#material!;
    const next = read(m.certFile, m.keyFile, m.source);
    if (next.fingerprint === m.fingerprint && next.key === m.key) return m;
    this.#material = next;
    for (const h of this.#handlers) h(next);
    return next;
  }

  /** watch: reload when the files change (debounced); returns nothing, `close` stops it. */
  watch(onError: (err: unknown) => void): void {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const changed = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        try {
          this.reload();
        } catch (err) {
          onError(err);
        }
      }, 200);
    };
    for (const f of [this.current.certFile, this.current.keyFile]) {
      try {
        this.#watchers.push(watch(f, changed));
      } catch (err) {
        onError(err);
      }
    }
  }

  close(): void {
    for (const w of this.#watchers.splice(0)) w.close();
  }
}

function read(certFile: string, keyFile: string, source: TlsMaterial["source"]): TlsMaterial {
  const cert = readFileSync(certFile, "utf8");
  const key = readFileSync(keyFile, "utf8");
  const x = new X509Certificate(cert); // throws on a file that is not a certificate
  if (!x.checkPrivateKey(createPrivateKey(key))) throw new Error(`${keyFile} is not the key of ${certFile}`);
  return { cert, key, fingerprint: x.fingerprint256, source, certFile, keyFile };
}

async function makeSelfSigned(dir: string, certFile: string, keyFile: string): Promise<void> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // node-opcua-crypto makes keys and certificates in JavaScript: no openssl binary on the device.
  const { generateKeyPair, privateKeyToPEM, createSelfSignedCertificate, CertificatePurpose } = await import(
    "node-opcua-crypto"
  );
  const { privateKey } = await generateKeyPair(2048);
  const host = hostname();
  const ips = new Set<string>(["127.0.0.1"]);
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === "IPv4") ips.add(a.address);
  const { cert } = await createSelfSignedCertificate({
    privateKey,
    subject: `/CN=${host}/O=Gatehouse`,
    dns: [...new Set([host, "localhost"])],
    ip: [...ips],
    validity: 3650,
    applicationUri: `urn:${host}:Gatehouse:tls`,
    purpose: CertificatePurpose.ForApplication,
  });
  const { privPem } = await privateKeyToPEM(privateKey);
  writeFileSync(keyFile, privPem, { mode: 0o600 });
  writeFileSync(certFile, cert, { mode: 0o644 });
}
