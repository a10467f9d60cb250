import type { Server, Socket } from "node:net";
import type { ISessionContext, UAVariable } from "node-opcua-address-space";
import type { OPCUACertificateManager } from "node-opcua-certificate-manager";
import { makeSHA1Thumbprint } from "node-opcua-crypto";
import { DataValue } from "node-opcua-data-value";
import type { OPCUAServer, ServerSession } from "node-opcua-server";
import { StatusCodes } from "node-opcua-status-code";
import { PermissionType, UserTokenType } from "node-opcua-types";
import { DataType } from "node-opcua-variant";

/**
 * The reaches into node-opcua's internals, in one place (pinned: node-opcua 2.186.4). Each checks the
 * shape it relies on and fails loudly naming this file, instead of silently losing a permission check.
 */
const pinned = "node-opcua 2.186.4";

function fail(what: string): never {
  throw new Error(`node-opcua internals changed: ${what}; written against ${pinned} (see src/listeners/opcua/node-opcua-internals.ts)`);
}

type PermissionCheck = (context: ISessionContext | null, permission: PermissionType) => boolean;

/**
 * overridePermissionCheck: a variable's Read and Write permission checks (Read, Write, Browse of the
 * value, `isUserReadable`) go through `checkPermissionPrivate`, and its UserAccessLevel attribute
 * through `_readUserAccessLevel`: both answer `decide` (undefined leaves the library's answer), so a
 * refusal is BadUserAccessDenied (Part 4 §7.34) and UserAccessLevel says what this session may do.
 */
export function overridePermissionCheck(variable: UAVariable, decide: (context: ISessionContext | null, permission: PermissionType) => boolean | undefined): void {
  const v = variable as unknown as { checkPermissionPrivate?: PermissionCheck; _readUserAccessLevel?: (context: ISessionContext) => DataValue };
  if (typeof v.checkPermissionPrivate !== "function") fail("UAVariable.checkPermissionPrivate is missing");
  if (typeof v._readUserAccessLevel !== "function") fail("UAVariable._readUserAccessLevel is missing");
  const original = v.checkPermissionPrivate.bind(variable);
  v.checkPermissionPrivate = (context, permission) => decide(context, permission) ?? original(context, permission);
  v._readUserAccessLevel = (context) => {
    let level = 0; // Part 3 §8.57 AccessLevelType: bit 0 CurrentRead, bit 1 CurrentWrite
    if (decide(context, PermissionType.Read) !== false && variable.isReadable(context)) level |= 1;
    if (decide(context, PermissionType.Write) !== false && variable.isWritable(context)) level |= 2;
    return new DataValue({ value: { dataType: DataType.Byte, value: level }, statusCode: StatusCodes.Good });
  };
}

interface SubscriptionLike {
  $session?: ServerSession;
  on(event: "monitoredItem", handler: (item: { recordValue: (dv: DataValue, ...rest: unknown[]) => unknown; node?: { nodeId?: { value?: unknown } } }, itemToMonitor: { nodeId: { value: unknown } }) => void): void;
}

/**
 * guardMonitoredItems: node-opcua checks permissions on Read, not on the values a monitored item
 * reports later (sampled or exception-based). Every value recorded for a session's monitored item
 * passes `mayRead(session, nodeIdValue)` first; a refused one becomes BadUserAccessDenied.
 */
export function guardMonitoredItems(session: ServerSession, mayRead: (session: ServerSession, nodeIdValue: unknown) => boolean): void {
  (session as unknown as { on(e: "new_subscription", h: (s: SubscriptionLike) => void): void }).on("new_subscription", (subscription) => {
    subscription.on("monitoredItem", (item, itemToMonitor) => {
      if (typeof item.recordValue !== "function") fail("MonitoredItem.recordValue is missing");
      const record = item.recordValue.bind(item);
      const nodeIdValue = itemToMonitor.nodeId.value;
      item.recordValue = (dv: DataValue, ...rest: unknown[]) => {
        const owner = subscription.$session ?? session; // a transferred subscription answers to its new session
        if (mayRead(owner, nodeIdValue)) return record(dv, ...rest);
        const now = new Date();
        return record(new DataValue({ statusCode: StatusCodes.BadUserAccessDenied, sourceTimestamp: now, serverTimestamp: now }), ...rest);
      };
    });
  });
}

interface EndpointLike {
  endpointDescriptions(): { userIdentityTokens?: { tokenType: UserTokenType }[] | null }[];
  getChannels(): { clientCertificate?: Buffer | null; abruptlyInterrupt(): void }[];
  on(event: "openSecureChannelFailure", handler: (socketData: { remoteAddress?: string; reason?: string }, channelData?: unknown) => void): void;
  on(event: "channelSecured", handler: (channel: { remoteAddress?: string; remotePort?: number }) => void): void;
  maxConnections: number;
  /** channels, pending (HEL/OpenSecureChannel not done) ones included */
  readonly activeChannelCount: number;
  _started?: boolean;
  _prevent_DDOS_Attack?: (establish: () => void, deny: () => void) => void;
  /** its TCP server (`net.createServer({ pauseOnConnect: true }, this._on_client_connection)`) */
  _server?: Server;
}

function endpointsOf(server: OPCUAServer): EndpointLike[] {
  const eps = (server as unknown as { endpoints?: EndpointLike[] }).endpoints;
  if (!Array.isArray(eps)) fail("OPCUAServer.endpoints is missing");
  for (const ep of eps) if (typeof ep.endpointDescriptions !== "function" || typeof ep.getChannels !== "function") fail("OPCUAServerEndPoint changed shape");
  return eps;
}

/**
 * offerOnlyUserTokens: node-opcua offers X509 user identity tokens whatever the options say (its
 * `userTokenTypes` option is a TODO there); a token type that is not offered is refused at activation.
 */
export function offerOnlyUserTokens(server: OPCUAServer, types: UserTokenType[]): void {
  for (const ep of endpointsOf(server)) {
    for (const d of ep.endpointDescriptions()) if (d.userIdentityTokens) d.userIdentityTokens = d.userIdentityTokens.filter((t) => types.includes(t.tokenType));
  }
}

/** onSecureChannelRefused: the endpoints' own event (the server does not re-emit it). */
export function onSecureChannelRefused(server: OPCUAServer, handler: (remote: string | undefined, reason: string | undefined) => void): void {
  for (const ep of endpointsOf(server)) ep.on("openSecureChannelFailure", (socketData) => handler(socketData?.remoteAddress, socketData?.reason));
}

/** interruptChannelsOf: every open secure channel that a client certificate (SHA-1 thumbprint, hex) opened. */
export function interruptChannelsOf(server: OPCUAServer, thumbprint: string): number {
  let n = 0;
  for (const ep of endpointsOf(server)) {
    for (const channel of ep.getChannels()) {
      const cert = channel.clientCertificate;
      if (cert && cert.length && makeSHA1Thumbprint(cert).toString("hex") === thumbprint) {
        channel.abruptlyInterrupt();
        n++;
      }
    }
  }
  return n;
}

/**
 * onIdentityRefused: a user identity token node-opcua refuses before asking the user manager
 * (anonymous, a password sent in the clear on a None endpoint, an unknown token policy).
 */
export function onIdentityRefused(server: OPCUAServer, handler: (session: ServerSession, token: unknown, status: string) => void): void {
  type Callback = (err: Error | null, status?: { isNotGood(): boolean; name?: string }) => void;
  type Check = (channel: unknown, session: unknown, token: unknown, signature: unknown, endpoint: unknown, callback: Callback) => void;
  const s = server as unknown as { isValidUserIdentityToken?: Check };
  if (typeof s.isValidUserIdentityToken !== "function") fail("OPCUAServer.isValidUserIdentityToken is missing");
  const original = s.isValidUserIdentityToken.bind(server);
  s.isValidUserIdentityToken = (channel, session, token, signature, endpoint, callback) =>
    original(channel, session, token, signature, endpoint, (err, status) => {
      if (!status || status.isNotGood()) handler(session as ServerSession, token, status?.name ?? "Bad");
      callback(err, status);
    });
}

/**
 * onCertificateRefused: the certificate manager is where a client application certificate is judged
 * (the secure channel layer does not re-emit the verdict); `handler` hears each refusal with the
 * certificate's thumbprint. The manager's own result is unchanged.
 */
export function onCertificateRefused(cm: OPCUACertificateManager, handler: (thumbprint: string, status: string) => void): void {
  type Check = (chain: Buffer | Buffer[], callback?: (err: Error | null, status?: StatusLike) => void) => Promise<StatusLike> | void;
  type StatusLike = { isNotGood(): boolean; name?: string };
  const m = cm as unknown as { checkCertificate?: Check };
  if (typeof m.checkCertificate !== "function") fail("OPCUACertificateManager.checkCertificate is missing");
  const original = m.checkCertificate.bind(cm);
  const report = (chain: Buffer | Buffer[], status: StatusLike | undefined) => {
    if (!status?.isNotGood()) return;
    const der = Array.isArray(chain) ? chain[0] : chain;
    handler(der && der.length ? makeSHA1Thumbprint(der).toString("hex") : "", status.name ?? "Bad");
  };
  m.checkCertificate = (chain, callback) => {
    if (callback) return original(chain, (err, status) => (report(chain, status), callback(err, status)));
    return (original(chain) as Promise<StatusLike>).then((status) => (report(chain, status), status));
  };
}

/** OpcuaAccept: what `takeOverAccept` gives the listener for one endpoint. */
export interface OpcuaAccept {
  /** secure channels (pending ones included) the endpoint can still open before its own limit */
  room(): number;
  /** hand an accepted socket to node-opcua (HEL/ACK, OpenSecureChannel, ...) */
  hand(socket: Socket): void;
}

/**
 * takeOverAccept: every socket an endpoint accepts goes to `onSocket` instead of node-opcua, which
 * hands it on (or drops it). node-opcua's own handler is the net server's first `connection`
 * listener (`net.createServer({ pauseOnConnect: true }, this._on_client_connection)`); it is moved
 * behind `onSocket`. The net server's cap (`maxConnections + 1`, which drops newcomers without a
 * word while idle sockets hold it) is raised by `room`: the accept pool decides who waits, and past
 * its channel limit node-opcua still closes the oldest channel without a session (Part 4 §5.5.2).
 * `secured` hears each channel whose OpenSecureChannel succeeded (its socket's address and port).
 */
export function takeOverAccept(server: OPCUAServer, onSocket: (socket: Socket, endpoint: OpcuaAccept) => void, secured: (remote: string, port: number) => void, room: number): void {
  for (const ep of endpointsOf(server)) {
    const net = ep._server;
    if (!net || typeof net.listeners !== "function") fail("OPCUAServerEndPoint._server (its net.Server) is missing");
    if (typeof ep.activeChannelCount !== "number") fail("OPCUAServerEndPoint.activeChannelCount is missing");
    const [onConnection, ...rest] = net.listeners("connection") as ((socket: Socket) => void)[];
    if (typeof onConnection !== "function" || onConnection.name !== "bound _on_client_connection") fail("the endpoint's first connection listener is not _on_client_connection");
    // node-opcua opens a socket's channel one turn of the event loop later (setImmediate): those
    // handed over meanwhile count as taken.
    let handing = 0;
    /** the socket being handed over (node-opcua's handler runs synchronously up to its setImmediate) */
    let current: Socket | undefined;
    const endpoint: OpcuaAccept = {
      room: () => ep.maxConnections - ep.activeChannelCount - handing,
      hand(socket) {
        handing++;
        current = socket;
        try {
          onConnection(socket);
        } finally {
          current = undefined;
        }
        setImmediate(() => handing--);
      },
    };
    net.removeListener("connection", onConnection);
    net.prependListener("connection", (socket: Socket) => onSocket(socket, endpoint));
    if (net.listeners("connection").length !== rest.length + 1) fail("could not replace the endpoint's connection listener");
    net.maxConnections = ep.maxConnections + 1 + room;
    // node-opcua opens the newcomer's channel a turn later (after closing its oldest channel without a
    // session, past its limit), even when the endpoint has stopped meanwhile (an assertion then throws
    // from a socket callback and ends the process) or the socket has closed (its channel would wait 30 s
    // for a HEL, holding a slot): then no channel is opened.
    if (typeof ep._prevent_DDOS_Attack !== "function") fail("OPCUAServerEndPoint._prevent_DDOS_Attack is missing");
    const prevent = ep._prevent_DDOS_Attack.bind(ep);
    ep._prevent_DDOS_Attack = (establish, deny) => {
      const socket = current;
      prevent(() => (ep._started && !socket?.destroyed ? establish() : socket?.destroy()), deny);
    };
    ep.on("channelSecured", (channel) => secured(channel.remoteAddress ?? "", channel.remotePort ?? 0));
  }
}
