import { existsSync } from "node:fs";
import { format } from "node:util";
import { setDebugLogger, setErrorLogger, setWarningLogger } from "node-opcua-debug";
import { hostname as osHostname, networkInterfaces } from "node:os";
import { join } from "node:path";
import { OPCUACertificateManager } from "node-opcua-certificate-manager";
import { MessageSecurityMode, SecurityPolicy } from "node-opcua-secure-channel";
import { OPCUAServer, UAUserManagerBase, type ServerSession } from "node-opcua-server";
import { WellKnownRoles } from "node-opcua-constants";
import { NodeId } from "node-opcua-nodeid";
import type { CertificateTrust } from "../../core/certificates.ts";
import type { Core } from "../../core/index.ts";
import type { SessionHandle } from "../../core/sessions.ts";
import type { Integration } from "../../core/types.ts";
import { StaleLoginError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/logger.ts";
import { buildAddressSpace } from "./address-space.ts";
import { certificateTrust } from "./certificates.ts";
// The standard nodeset as a precompiled image, embedded in the binary (the package's own lookup
// reads files next to itself, which do not exist inside `bun build --compile`).
import standardNodeset from "../../../node_modules/node-opcua-nodesets/nodesets/Opc.Ua.NodeSet2.ndjson.gz" with { type: "file" };

export interface OpcuaDeps {
  core: Core;
  log: Logger;
}

export interface OpcuaOptions {
  host: string;
  port: number;
  dataDir: string;
  version: string;
  /** labs only: trust every client application certificate on first contact */
  autoAcceptCertificates?: boolean;
}

export interface RunningOpcua {
  certificates: CertificateTrust;
  port: number;
  stop(): Promise<void>;
}

/** routeLibraryLogs: node-opcua prints multi-line text to the console; journald wants one line per event. */
function routeLibraryLogs(log: Logger): void {
  const line = (args: unknown[]) => format(...args).replace(/\s*\n\s*(\.\.\.)?\s*/g, " ").slice(0, 2000);
  setWarningLogger((...args: unknown[]) => log.warn("node-opcua", { detail: line(args) }));
  setErrorLogger((...args: unknown[]) => log.error("node-opcua", { detail: line(args) }));
  setDebugLogger(() => {});
}

/** Offered policies: None for username tokens (encrypted by the token policy) and the current secure ones; deprecated ones stay off. */
const securityPolicies = [SecurityPolicy.None, SecurityPolicy.Basic256Sha256, SecurityPolicy.Aes128_Sha256_RsaOaep, SecurityPolicy.Aes256_Sha256_RsaPss];
const securityModes = [MessageSecurityMode.None, MessageSecurityMode.Sign, MessageSecurityMode.SignAndEncrypt];

/** addresses: every address of this host, loopback included, for the certificate's SAN. */
function hostAddresses(bind: string): string[] {
  const ips = new Set<string>(["127.0.0.1"]);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) ips.add(a.address.replace(/%.*$/, ""));
  if (bind !== "0.0.0.0" && bind !== "::") ips.add(bind);
  return [...ips].sort();
}

/**
 * startOpcuaServer: a node-opcua server whose only users are OPC UA integrations.
 * allowAnonymous is off, unknown client certificates are rejected (and listed for the admin),
 * and the PKI lives in the data dir. Loaded on demand by ./index.ts (node-opcua is heavy).
 */
export async function startOpcuaServer(deps: OpcuaDeps, opts: OpcuaOptions): Promise<RunningOpcua> {
  const { core, log } = deps;
  const { credentials, sessions } = core;
  /** integration each ServerSession authenticated as (set in isValidUser, read on activation) */
  const loginOf = new WeakMap<ServerSession, Integration>();
  const handles = new Map<ServerSession, SessionHandle>();

  const integrationOf = (session: unknown) => {
    const login = loginOf.get(session as ServerSession);
    return login === undefined ? undefined : credentials.peek(login.id);
  };

  // OPC UA Part 4 §5.6.3 ActivateSession: a UserNameIdentityToken is checked here, for every protocol the same way.
  class GatehouseUsers extends UAUserManagerBase {
    override async isValidUser(session: ServerSession, username: string, password: string): Promise<boolean> {
      const result = await credentials.verify("opcua", username, password, {
        remote: session?.channel?.remoteAddress,
        clientId: session?.clientDescription?.applicationUri?.toString() || session?.sessionName,
      });
      if (result.ok) loginOf.set(session, result.integration);
      return result.ok;
    }
    override getUserRoles(): NodeId[] {
      return [new NodeId(NodeId.NodeIdType.NUMERIC, WellKnownRoles.AuthenticatedUser, 0)];
    }
    override getIdentitiesForRole() {
      return [];
    }
  }

  const closeHandle = (session: ServerSession) => {
    handles.get(session)?.close();
    handles.delete(session);
  };

  routeLibraryLogs(log);
  const pki = join(opts.dataDir, "pki");
  const cm = new OPCUACertificateManager({ rootFolder: pki, automaticallyAcceptUnknownCertificate: opts.autoAcceptCertificates ?? false });
  await cm.initialize();
  // X509 user tokens are not offered, but node-opcua would otherwise create this PKI under ~/.config.
  const userCm = new OPCUACertificateManager({ rootFolder: join(opts.dataDir, "pki-users"), automaticallyAcceptUnknownCertificate: false });
  await userCm.initialize();

  const host = osHostname();
  const applicationUri = `urn:${host}:Gatehouse`;
  const certificateFile = join(cm.rootDir, "own", "certs", "gatehouse.pem");
  if (!existsSync(certificateFile)) {
    await cm.createSelfSignedCertificate({
      applicationUri,
      dns: [...new Set([host, "localhost"])],
      ip: hostAddresses(opts.host),
      subject: `/CN=Gatehouse@${host}/O=Gatehouse/OU=OPC UA server`,
      startDate: new Date(),
      validity: 365 * 10,
      outputFile: certificateFile,
    });
    log.info("opc ua certificate created", { file: certificateFile });
  }

  const s = new OPCUAServer({
    port: opts.port,
    host: opts.host === "0.0.0.0" || opts.host === "::" ? undefined : opts.host,
    hostname: opts.host === "0.0.0.0" || opts.host === "::" ? host : opts.host,
    nodeset_filename: [standardNodeset],
    allowAnonymous: false,
    securityPolicies,
    securityModes,
    serverCertificateManager: cm,
    userCertificateManager: userCm,
    certificateFile,
    privateKeyFile: cm.privateKey,
    userManager: new GatehouseUsers(),
    serverInfo: { applicationUri, productUri: "urn:gatehouse", applicationName: { text: "Gatehouse", locale: "en" } },
    buildInfo: { productName: "Gatehouse", manufacturerName: "Gatehouse", softwareVersion: opts.version, productUri: "urn:gatehouse" },
    disableDiscovery: true,
    serverCapabilities: { maxSessions: 1000 },
  });
  await s.initialize();
  const startedAt = Date.now();
  const stopBridge = await buildAddressSpace(s.engine.addressSpace!, {
    version: opts.version,
    status: { integrations: () => credentials.count(), onlineByType: () => sessions.onlineCountByType(), startedAt },
    bus: core.bus,
    integrationOf,
    log,
  });

  s.on("session_activated", (session) => {
    const integration = loginOf.get(session);
    closeHandle(session); // a re-activation replaces the previous identity
    if (!integration) return;
    const kick = (reason: string) => {
      log.info("opc ua session closed", { username: integration.username, reason });
      handles.delete(session);
      // Part 4 §5.6.4: the session ends; the client's next request gets BadSessionIdInvalid.
      s.engine.closeSession(session.authenticationToken, true, "Forcing");
    };
    try {
      handles.set(
        session,
        sessions.open({
          integration,
          type: "opcua",
          clientId: session.clientDescription?.applicationUri?.toString() || session.sessionName,
          remote: session.channel?.remoteAddress,
          kick,
        }),
      );
    } catch (err) {
      if (!(err instanceof StaleLoginError)) throw err;
      kick("integration changed during login"); // changed or deleted while the session was being activated
    }
  });
  s.on("session_closed", (session) => closeHandle(session));
  s.on("openSecureChannelFailure", (socketData) => log.info("opc ua secure channel refused", { remote: (socketData as { remoteAddress?: string }).remoteAddress }));

  await s.start();
  const endpoint = s.endpoints?.[0] as { port?: number } | undefined;
  const certificates = certificateTrust(cm);
  const detachTrust = core.certificates.attach(certificates);
  return {
    certificates,
    port: endpoint?.port ?? opts.port,
    async stop() {
      detachTrust();
      stopBridge();
      for (const session of [...handles.keys()]) closeHandle(session);
      await s.shutdown(0);
    },
  };
}
