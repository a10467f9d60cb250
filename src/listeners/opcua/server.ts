import { existsSync } from "node:fs";
import { format } from "node:util";
import { setDebugLogger, setErrorLogger, setWarningLogger } from "node-opcua-debug";
import { hostname as osHostname, networkInterfaces } from "node:os";
import { join } from "node:path";
import { OPCUACertificateManager } from "node-opcua-certificate-manager";
import { MessageSecurityMode, SecurityPolicy } from "node-opcua-secure-channel";
import { type StatusCode, StatusCodes } from "node-opcua-status-code";
import { OPCUAServer, UAUserManagerBase, type ServerSession } from "node-opcua-server";
import { WellKnownRoles } from "node-opcua-constants";
import { NodeId } from "node-opcua-nodeid";
import type { UAVariable } from "node-opcua-address-space";
import { DataType, Variant } from "node-opcua-variant";
import type { CertificateTrust } from "./trust.ts";
import type { AcceptPool } from "../../core/accept-pool.ts";
import type { Core } from "../../core/index.ts";
import type { SessionHandle } from "../../core/sessions.ts";
import type { Integration } from "../../core/types.ts";
import { StaleLoginError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/logger.ts";
import { mayRead } from "../../core/permissions.ts";
import { UserTokenType } from "node-opcua-types";
import { makeSHA1Thumbprint } from "node-opcua-crypto";
import { admitThroughPool } from "./accept.ts";
import { buildAddressSpace, variantToPayload } from "./address-space.ts";
import {
  type ActivatingChannel,
  checkUserNamesWith,
  guardMonitoredItems,
  hideFromRegistration,
  hideNodes,
  sessionDiagnostics,
  interruptChannelsOf,
  offerOnlyUserTokens,
  onCertificateRefused,
  onChannelLost,
  onIdentityRefused,
  onSecureChannelRefused,
  reclaimAtSessionLimit,
} from "./node-opcua-internals.ts";
import { certificateTrust, trimFolder } from "./certificates.ts";
// The standard nodeset as precompiled images, embedded in the binary (the package's own lookup
// reads files next to itself, which do not exist inside `bun build --compile`): by default the one
// trimmed to a data-access server by scripts/trim-nodeset.ts (~22 MB less resident memory), the
// whole one with `--opcua-full-nodeset true`.
import fullNodeset from "../../../node_modules/node-opcua-nodesets/nodesets/Opc.Ua.NodeSet2.ndjson.gz" with {
  type: "file",
};
import trimmedNodeset from "./Opc.Ua.Gatehouse.ndjson.gz" with { type: "file" };

export interface OpcuaDeps {
  core: Core;
  log: Logger;
  /** the pool every socket is counted in from accept until its secure channel is open */
  pool: AcceptPool;
}

export interface OpcuaOptions {
  host: string;
  port: number;
  dataDir: string;
  version: string;
  /** labs only: trust every client application certificate on first contact */
  autoAcceptCertificates?: boolean;
  /** sessions at most; secure channels are capped to match (node-opcua's own default is 10 channels) */
  maxSessions?: number;
  /** the whole standard nodeset (PubSub, GDS, alarms and conditions types) instead of the trimmed one */
  fullNodeset?: boolean;
  /** refused client certificates kept for the admin to trust, newest first */
  maxRejectedCertificates?: number;
}

export interface RunningOpcua {
  certificates: CertificateTrust;
  port: number;
  stop(): Promise<void>;
}

/** routeLibraryLogs: node-opcua prints multi-line text to the console; journald wants one line per event. */
function routeLibraryLogs(log: Logger): void {
  const line = (args: unknown[]) =>
    format(...args)
      .replace(/\s*\n\s*(\.\.\.)?\s*/g, " ")
      .slice(0, 2000);
  setWarningLogger((...args: unknown[]) => log.warn("node-opcua", { detail: line(args) }));
  setErrorLogger((...args: unknown[]) => log.error("node-opcua", { detail: line(args) }));
  setDebugLogger(() => {});
}

interface TransportHello {
  receiveBufferSize: number;
  sendBufferSize: number;
  maxMessageSize: number;
  maxChunkCount: number;
}

/** maxMessageBytes: an OPC UA message may carry one payload the broker accepts, plus encoding overhead. */
function maxMessageBytes(maxPayload: number): number {
  return Math.max(256 * 1024, maxPayload * 2 + 64 * 1024);
}

/**
 * transportLimits: the limits agreed in HEL/ACK (Part 6 §7.1.2.3), with the message size capped so a
 * huge write is refused by the transport before it is buffered, not after.
 */
function transportLimits(hello: TransportHello, maxMessage: number): TransportHello {
  const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
  const receiveBufferSize = clamp(hello.receiveBufferSize || 65536, 8192, 524288);
  const sendBufferSize = clamp(hello.sendBufferSize || 65536, 8192, 524288);
  const maxMessageSize = hello.maxMessageSize ? Math.min(hello.maxMessageSize, maxMessage) : maxMessage;
  const maxChunkCount = Math.max(1, Math.ceil(maxMessageSize / Math.min(receiveBufferSize, sendBufferSize)) + 1);
  return { receiveBufferSize, sendBufferSize, maxMessageSize, maxChunkCount };
}

/**
 * orphanGraceMs: how long a session whose secure channel ended keeps its subscriptions for the client
 * to re-activate it on a new channel (Part 4 §5.6.3; node-opcua-client does so after a network break).
 * Meanwhile it does not count: the integration shows offline, and a CreateSession at
 * `--opcua-max-sessions` closes the oldest such session first. Then it is closed.
 */
const orphanGraceMs = 30_000;

/** Offered policies: None for username tokens (encrypted by the token policy) and the current secure ones; deprecated ones stay off. */
const securityPolicies = [
  SecurityPolicy.None,
  SecurityPolicy.Basic256Sha256,
  SecurityPolicy.Aes128_Sha256_RsaOaep,
  SecurityPolicy.Aes256_Sha256_RsaPss,
];
const securityModes = [MessageSecurityMode.None, MessageSecurityMode.Sign, MessageSecurityMode.SignAndEncrypt];

/** hostAddresses: every address of this host, loopback included, for the certificate's SAN. */
function hostAddresses(bind: string): string[] {
  const ips = new Set<string>(["127.0.0.1"]);
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) ips.add(a.address.replace(/%.*$/, ""));
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
  const maxSessions = opts.maxSessions ?? 100;
  /** integration each ServerSession authenticated as (set in isValidUser, read on activation) */
  const loginOf = new WeakMap<ServerSession, Integration>();
  const handles = new Map<ServerSession, SessionHandle>();

  const integrationOf = (session: unknown) => {
    const login = loginOf.get(session as ServerSession);
    return login === undefined ? undefined : credentials.peek(login.id);
  };

  /** the channel each ActivateSession came over, while its username is checked (its close abandons the check) */
  const activatingOver = new WeakMap<ServerSession, ActivatingChannel>();
  /** a refusal that is not "access denied": the password-check line was full */
  const refusedWith = new WeakMap<ServerSession, StatusCode>();

  // OPC UA Part 4 §5.6.3 ActivateSession: a UserNameIdentityToken is checked here, for every protocol the same way.
  class GatehouseUsers extends UAUserManagerBase {
    override async isValidUser(session: ServerSession, username: string, password: string): Promise<boolean> {
      refusedWith.delete(session);
      // The channel's close (the client went away) takes a check still waiting out of the line.
      const channel = activatingOver.get(session);
      activatingOver.delete(session);
      const gone = new AbortController();
      const abort = () => gone.abort();
      channel?.once("abort", abort);
      let result: Awaited<ReturnType<typeof credentials.verify>>;
      try {
        result = await credentials.verify(
          "opcua",
          username,
          password,
          {
            remote: session?.channel?.remoteAddress,
            clientId: session?.clientDescription?.applicationUri?.toString() || session?.sessionName,
          },
          gone.signal,
        );
      } finally {
        channel?.removeListener("abort", abort);
      }
      if (result.ok) loginOf.set(session, result.integration);
      // Part 4 §7.34: BadServerTooBusy, "the server does not have the resources to process the request
      // at this time": the client may try again (BadUserAccessDenied would tell it the password is wrong).
      else if (result.reason === "busy") refusedWith.set(session, StatusCodes.BadServerTooBusy);
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

  /** sessions whose secure channel ended, oldest first, each with the timer that closes it */
  const orphans = new Map<ServerSession, ReturnType<typeof setTimeout>>();
  const adopt = (session: ServerSession) => {
    clearTimeout(orphans.get(session));
    orphans.delete(session);
  };

  routeLibraryLogs(log);
  const pki = join(opts.dataDir, "pki");
  const cm = new OPCUACertificateManager({
    rootFolder: pki,
    automaticallyAcceptUnknownCertificate: opts.autoAcceptCertificates ?? false,
  });
  await cm.initialize();
  // X509 user tokens are not offered, but node-opcua would otherwise create this PKI under ~/.config.
  const userCm = new OPCUACertificateManager({
    rootFolder: join(opts.dataDir, "pki-users"),
    automaticallyAcceptUnknownCertificate: false,
  });
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
    nodeset_filename: [opts.fullNodeset ? fullNodeset : trimmedNodeset],
    allowAnonymous: false,
    securityPolicies,
    securityModes,
    serverCertificateManager: cm,
    userCertificateManager: userCm,
    certificateFile,
    privateKeyFile: cm.privateKey,
    userManager: new GatehouseUsers(),
    serverInfo: { applicationUri, productUri: "urn:gatehouse", applicationName: { text: "Gatehouse", locale: "en" } },
    buildInfo: {
      productName: "Gatehouse",
      manufacturerName: "Gatehouse",
      softwareVersion: opts.version,
      productUri: "urn:gatehouse",
    },
    disableDiscovery: true,
    // minSupportedSampleRate 0: a monitored item asking for sampling 0 on a Topics variable is served
    // exception-based and gets every change; sampled items stay floored at node-opcua's 50 ms.
    serverCapabilities: { maxSessions, minSupportedSampleRate: 0 },
    // A channel per session, plus a few for clients that are connecting or discovering endpoints.
    maxConnectionsPerEndpoint: maxSessions + 5,
    transportSettings: {
      adjustTransportLimits: (hello: TransportHello) =>
        transportLimits(hello, maxMessageBytes(core.bus.maxPayloadBytes)),
    },
  });
  await s.initialize();
  // node-opcua publishes max(configured, 100) in ServerCapabilities/MinSupportedSampleRate; this
  // server does serve sampling 0 (exception-based) on Topics variables, so it says so.
  const minSampleRate = s.engine.addressSpace!.findNode("i=2272") as UAVariable | null;
  minSampleRate?.bindVariable({ get: () => new Variant({ dataType: DataType.Double, value: 0 }) }, true);
  const startedAt = Date.now();
  const mirror = await buildAddressSpace(s.engine.addressSpace!, {
    version: opts.version,
    status: { integrations: () => credentials.count(), onlineByType: () => sessions.onlineCountByType(), startedAt },
    bus: core.bus,
    integrationOf,
    meterOf: (session) => handles.get(session as ServerSession)?.traffic,
    topicSpace: core.topicSpace,
    log,
  });
  // A topic a session may not read is absent to it in every service that names nodes; so are the
  // diagnostics that describe sessions (other integrations' names, client URIs and host names).
  const diagnostics = sessionDiagnostics(s);
  const isHidden = (session: unknown, nodeId: NodeId) => diagnostics(nodeId) || mirror.isHidden(session, nodeId);
  hideNodes(s, isHidden);
  // A new, renamed or deleted VRPC integration moves a domain's shield: visibility is worked out again.
  const vrpcChanged = ({ integration }: { integration: { type: string } }) =>
    void (integration.type === "vrpc" && mirror.invalidate());
  const stopInvalidating = [
    core.events.on("integration.created", vrpcChanged),
    core.events.on("integration.updated", vrpcChanged),
    core.events.on("integration.deleted", vrpcChanged),
  ];
  // A session whose client is gone does not hold a place under --opcua-max-sessions.
  reclaimAtSessionLimit(s, () => orphans.keys().next().value);
  const orphaned = (session: ServerSession) => {
    if (orphans.has(session) || session.status !== "active") return;
    closeHandle(session); // nobody is on the other end: offline now
    const timer = setTimeout(() => {
      orphans.delete(session);
      if (session.status !== "active") return;
      try {
        s.engine.closeSession(session.authenticationToken, true, "Terminated");
      } catch {
        // closed meanwhile
      }
    }, orphanGraceMs);
    timer.unref?.();
    orphans.set(session, timer);
  };
  /** sessions whose per-session guards are installed (a re-activation keeps them: they ask who it is now) */
  const guarded = new WeakSet<ServerSession>();

  // Only username tokens: anonymous is off, and X509 user tokens would bypass the integrations.
  offerOnlyUserTokens(s, [UserTokenType.UserName]);
  checkUserNamesWith(
    s,
    (session, channel) => activatingOver.set(session, channel),
    (session) => refusedWith.get(session),
  );
  // Every socket counts in the accept pool from accept until its secure channel is open.
  admitThroughPool(s, deps.pool);
  const refusedIdentity = (session: ServerSession, token: unknown, status: string) => {
    const kind = token && typeof token === "object" ? token.constructor.name : "none";
    const reason =
      kind === "AnonymousIdentityToken"
        ? "anonymous"
        : kind === "X509IdentityToken"
          ? "certificate-user"
          : "insecure-token";
    const username = (token as { userName?: string } | null)?.userName ?? "";
    log.info("opc ua identity refused", {
      reason,
      username: username.slice(0, 128) || undefined,
      status,
      remote: session?.channel?.remoteAddress,
    });
    credentials.loginRefused("opcua", username, reason, {
      remote: session?.channel?.remoteAddress,
      clientId: session?.clientDescription?.applicationUri?.toString(),
    });
  };
  onIdentityRefused(s, refusedIdentity);
  onSecureChannelRefused(s, (remote, reason) =>
    log.info("opc ua secure channel refused", { remote, reason: reason?.slice(0, 200) }),
  );
  // One line (and one failed-login entry) per refused certificate a minute: an untrusted client retries.
  const certificateReported = new Map<string, number>();
  onCertificateRefused(cm, (thumbprint, status) => {
    const now = Date.now();
    if ((certificateReported.get(thumbprint) ?? 0) > now - 60_000) return;
    if (certificateReported.size > 1000) certificateReported.clear();
    certificateReported.set(thumbprint, now);
    log.info("opc ua client certificate refused", { thumbprint, status });
    void trimFolder(cm.rejectedFolder, opts.maxRejectedCertificates ?? 200).then(
      (n) => n && log.info("opc ua rejected certificates trimmed", { removed: n }),
    );
    credentials.loginRefused("opcua", "", "certificate-rejected", { clientId: `certificate ${thumbprint}` });
  });

  s.on("session_activated", (session) => {
    const integration = loginOf.get(session);
    closeHandle(session); // a re-activation replaces the previous identity
    adopt(session); // re-activated on a new channel within its grace
    if (!integration) return;
    if (!guarded.has(session)) {
      guarded.add(session);
      guardMonitoredItems(
        session,
        (owner, nodeIdValue) => {
          if (typeof nodeIdValue !== "string" || !nodeIdValue.startsWith("Topics/")) return true; // Status: any signed-in session
          return mayRead(integrationOf(owner), nodeIdValue.slice("Topics/".length), core.topicSpace);
        },
        isHidden,
        (owner, nodeIdValue, dv) => {
          // a topic's value to a monitored item is a message out (the Status object's are not traffic)
          if (typeof nodeIdValue === "string" && nodeIdValue.startsWith("Topics/") && dv.value)
            handles.get(owner)?.traffic.delivered(variantToPayload(dv.value).length);
        },
      );
      hideFromRegistration(session, isHidden);
      // OPC UA keeps a session when its channel ends, for a re-activation on a new one; node-opcua
      // counts it until its timeout (the client's choice, often an hour). Here it waits orphanGraceMs.
      onChannelLost(session, () => orphaned(session));
    }
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
  s.on("session_closed", (session) => {
    closeHandle(session);
    adopt(session);
  });

  await s.start();
  const endpoint = s.endpoints?.[0] as { port?: number } | undefined;
  const certificates = certificateTrust(cm, (thumbprint) => {
    // Sessions opened over a channel with that certificate end like on a deactivate; then the channels.
    for (const [session, handle] of [...handles]) {
      const cert = session.channel?.clientCertificate;
      if (cert && makeSHA1Thumbprint(cert).toString("hex") === thumbprint)
        sessions.kickSession(handle.id, "client certificate revoked");
    }
    const n = interruptChannelsOf(s, thumbprint);
    log.info("opc ua certificate revoked", { thumbprint, channelsClosed: n });
  });
  const detachMetrics = core.metrics.gauge({
    name: "gatehouse_opcua_subscriptions",
    help: "OPC UA subscriptions",
    read: () => [[{}, s.currentSubscriptionCount]],
  });
  return {
    certificates,
    port: endpoint?.port ?? opts.port,
    async stop() {
      detachMetrics();
      mirror.stop();
      for (const off of stopInvalidating) off();
      for (const session of [...handles.keys()]) closeHandle(session);
      for (const timer of orphans.values()) clearTimeout(timer);
      orphans.clear();
      await s.shutdown(0);
    },
  };
}
