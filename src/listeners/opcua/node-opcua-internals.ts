import type { Server, Socket } from "node:net";
import type { ISessionContext, UAVariable } from "node-opcua-address-space";
import type { OPCUACertificateManager } from "node-opcua-certificate-manager";
import { makeSHA1Thumbprint } from "node-opcua-crypto";
import { DataValue } from "node-opcua-data-value";
import type { OPCUAServer, ServerSession } from "node-opcua-server";
import { type StatusCode, StatusCodes } from "node-opcua-status-code";
import { NodeIdType, resolveNodeId, type NodeId } from "node-opcua-nodeid";
import {
  type BrowsePathResult,
  BrowseResult,
  CallMethodResult,
  HistoryReadResult,
  MonitoredItemCreateResult,
  PermissionType,
  TranslateBrowsePathsToNodeIdsResponse,
  type UserTokenType,
  type BrowsePath,
  type TranslateBrowsePathsToNodeIdsRequest,
} from "node-opcua-types";
import { DataType } from "node-opcua-variant";

/**
 * The reaches into node-opcua's internals, in one place (pinned: node-opcua 2.186.4). Each checks the
 * shape it relies on and fails loudly naming this file, instead of silently losing a permission check.
 */
const pinned = "node-opcua 2.186.4";

function fail(what: string): never {
  throw new Error(
    `node-opcua internals changed: ${what}; written against ${pinned} (see src/listeners/opcua/node-opcua-internals.ts)`,
  );
}

type PermissionCheck = (context: ISessionContext | null, permission: PermissionType) => boolean;

/**
 * overridePermissionCheck: a variable's Read and Write permission checks (Read, Write, Browse of the
 * value, `isUserReadable`) go through `checkPermissionPrivate`, and its UserAccessLevel attribute
 * through `_readUserAccessLevel`: both answer `decide` (undefined leaves the library's answer), so a
 * refusal is BadUserAccessDenied (Part 4 §7.34) and UserAccessLevel says what this session may do.
 */
export function overridePermissionCheck(
  variable: UAVariable,
  decide: (context: ISessionContext | null, permission: PermissionType) => boolean | undefined,
): void {
  const v = variable as unknown as {
    checkPermissionPrivate?: PermissionCheck;
    _readUserAccessLevel?: (context: ISessionContext) => DataValue;
  };
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

/** ValueMeter: hears each Value read and write a session makes on a variable, with its outcome. */
export interface ValueMeter {
  /** read: a Read service answered this session the value (its status says whether it was given) */
  read(context: ISessionContext | null, dataValue: DataValue): void;
  /** writing: a Write by this session is about to run (the variable's setter is called within it, synchronously) */
  writing?(context: ISessionContext): void;
  /** written: the synchronous part of that Write is over (the setter has taken what it needs) */
  written?(): void;
  /** write: a Write of `dataValue` by this session ended with `status` */
  write(context: ISessionContext | null, dataValue: DataValue | undefined, status: StatusCode | undefined): void;
}

const valueAttribute = 13; // AttributeIds.Value (Part 6 A.1; node-opcua-data-model is not a dependency of ours)

/**
 * meterValueAccess: the Read and Write services reach a variable's Value through `readAttribute` and
 * `writeAttribute` (with the session's context); sampling and the monitored items' first value go
 * around them (`readValue` / `readValueAsync`), so only what a session asked for is heard here.
 */
export function meterValueAccess(variable: UAVariable, meter: ValueMeter): void {
  if (typeof variable.readAttribute !== "function") fail("UAVariable.readAttribute is missing");
  if (typeof variable.writeAttribute !== "function") fail("UAVariable.writeAttribute is missing");
  const read = variable.readAttribute.bind(variable);
  const write = variable.writeAttribute.bind(variable) as (
    context: ISessionContext | null,
    writeValue: { attributeId?: number; value?: DataValue },
    callback: (err: Error | null, status?: StatusCode) => void,
  ) => void;
  variable.readAttribute = (context, attributeId, ...rest) => {
    const dv = read(context, attributeId, ...rest);
    if (attributeId === valueAttribute && context?.session) meter.read(context, dv);
    return dv;
  };
  (variable as { writeAttribute: typeof write }).writeAttribute = (context, writeValue, callback) => {
    if (writeValue?.attributeId !== valueAttribute || !context?.session || typeof callback !== "function")
      return write(context, writeValue, callback);
    meter.writing?.(context);
    try {
      write(context, writeValue, (err, status) => {
        if (!err) meter.write(context, writeValue.value, status);
        callback(err, status);
      });
    } finally {
      meter.written?.();
    }
  };
}

type PreCreate = (
  addressSpace: unknown,
  timestampsToReturn: unknown,
  request: { itemToMonitor: { nodeId: NodeId } },
) => { createResult: MonitoredItemCreateResult };

interface SubscriptionLike {
  $session?: ServerSession;
  preCreateMonitoredItem?: PreCreate;
  on(
    event: "monitoredItem",
    handler: (
      item: { recordValue: (dv: DataValue, ...rest: unknown[]) => unknown; node?: { nodeId?: { value?: unknown } } },
      itemToMonitor: { nodeId: { value: unknown } },
    ) => void,
  ): void;
}

/** HiddenNode: is this node absent for this session (see address-space.ts `isHidden`)? */
export type HiddenNode = (session: unknown, nodeId: NodeId) => boolean;

/** hiddenFrom: `hidden` for a node id as a request carries it (a NodeId, or text); garbage is not hidden (the library refuses it). */
function hiddenFrom(hidden: HiddenNode, session: unknown, nodeId: unknown): boolean {
  if (nodeId === undefined || nodeId === null) return false;
  let id: NodeId;
  try {
    id = resolveNodeId(nodeId as NodeId);
  } catch {
    return false;
  }
  return hidden(session, id);
}

/**
 * guardMonitoredItems: node-opcua checks permissions on Read, not on the values a monitored item
 * reports later (sampled or exception-based). Every value recorded for a session's monitored item
 * passes `mayRead(session, nodeIdValue)` first; a refused one becomes BadUserAccessDenied. A monitored
 * item on a node hidden from the session is refused at creation with BadNodeIdUnknown, as for a node
 * that does not exist (the library's `preCreateMonitoredItem` has no session to ask).
 */
export function guardMonitoredItems(
  session: ServerSession,
  mayRead: (session: ServerSession, nodeIdValue: unknown) => boolean,
  hidden: HiddenNode,
  /** delivered: a value the session may read was recorded for it (it goes out in the next publish) */
  delivered?: (session: ServerSession, nodeIdValue: unknown, dv: DataValue) => void,
): void {
  (session as unknown as { on(e: "new_subscription", h: (s: SubscriptionLike) => void): void }).on(
    "new_subscription",
    (subscription) => {
      if (typeof subscription.preCreateMonitoredItem !== "function")
        fail("Subscription.preCreateMonitoredItem is missing");
      const preCreate = subscription.preCreateMonitoredItem.bind(subscription);
      subscription.preCreateMonitoredItem = (addressSpace, timestampsToReturn, request) => {
        const owner = subscription.$session ?? session;
        if (hiddenFrom(hidden, owner, request?.itemToMonitor?.nodeId)) {
          return {
            createResult: new MonitoredItemCreateResult({ statusCode: StatusCodes.BadNodeIdUnknown }),
            monitoredItemCreateRequest: request,
          } as ReturnType<PreCreate>;
        }
        return preCreate(addressSpace, timestampsToReturn, request);
      };
      subscription.on("monitoredItem", (item, itemToMonitor) => {
        if (typeof item.recordValue !== "function") fail("MonitoredItem.recordValue is missing");
        const record = item.recordValue.bind(item);
        const nodeIdValue = itemToMonitor.nodeId.value;
        item.recordValue = (dv: DataValue, ...rest: unknown[]) => {
          const owner = subscription.$session ?? session; // a transferred subscription answers to its new session
          if (mayRead(owner, nodeIdValue)) {
            delivered?.(owner, nodeIdValue, dv);
            return record(dv, ...rest);
          }
          const now = new Date();
          return record(
            new DataValue({ statusCode: StatusCodes.BadUserAccessDenied, sourceTimestamp: now, serverTimestamp: now }),
            ...rest,
          );
        };
      });
    },
  );
}

interface EndpointLike {
  endpointDescriptions(): { userIdentityTokens?: { tokenType: UserTokenType }[] | null }[];
  getChannels(): { clientCertificate?: Buffer | null; abruptlyInterrupt(): void }[];
  on(
    event: "openSecureChannelFailure",
    handler: (socketData: { remoteAddress?: string; reason?: string }, channelData?: unknown) => void,
  ): void;
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
  for (const ep of eps)
    if (typeof ep.endpointDescriptions !== "function" || typeof ep.getChannels !== "function")
      fail("OPCUAServerEndPoint changed shape");
  return eps;
}

/**
 * offerOnlyUserTokens: node-opcua offers X509 user identity tokens whatever the options say (its
 * `userTokenTypes` option is a TODO there); a token type that is not offered is refused at activation.
 */
export function offerOnlyUserTokens(server: OPCUAServer, types: UserTokenType[]): void {
  for (const ep of endpointsOf(server)) {
    for (const d of ep.endpointDescriptions())
      if (d.userIdentityTokens) d.userIdentityTokens = d.userIdentityTokens.filter((t) => types.includes(t.tokenType));
  }
}

/** onSecureChannelRefused: the endpoints' own event (the server does not re-emit it). */
export function onSecureChannelRefused(
  server: OPCUAServer,
  handler: (remote: string | undefined, reason: string | undefined) => void,
): void {
  for (const ep of endpointsOf(server))
    ep.on("openSecureChannelFailure", (socketData) => handler(socketData?.remoteAddress, socketData?.reason));
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
export function onIdentityRefused(
  server: OPCUAServer,
  handler: (session: ServerSession, token: unknown, status: string) => void,
): void {
  type Callback = (err: Error | null, status?: { isNotGood(): boolean; name?: string }) => void;
  type Check = (
    channel: unknown,
    session: unknown,
    token: unknown,
    signature: unknown,
    endpoint: unknown,
    callback: Callback,
  ) => void;
  const s = server as unknown as { isValidUserIdentityToken?: Check };
  if (typeof s.isValidUserIdentityToken !== "function") fail("OPCUAServer.isValidUserIdentityToken is missing");
  const original = s.isValidUserIdentityToken.bind(server);
  s.isValidUserIdentityToken = (channel, session, token, signature, endpoint, callback) =>
    original(channel, session, token, signature, endpoint, (err, status) => {
      if (!status || status.isNotGood()) handler(session as ServerSession, token, status?.name ?? "Bad");
      callback(err, status);
    });
}

/** ActivatingChannel: the secure channel an ActivateSession came over (its `abort` is the transport's close). */
export interface ActivatingChannel {
  once(event: "abort", handler: () => void): void;
  removeListener(event: "abort", handler: () => void): void;
}

/**
 * checkUserNamesWith: node-opcua asks the user manager with the session alone, and answers any refusal
 * with BadUserAccessDenied. Around its username check (after it has decrypted the password): `begin`
 * hears the session and the channel the ActivateSession came over (the channel the session has may
 * be another one until the activation succeeds), and a refused check is answered with
 * `refusal(session)` when that gives a status (e.g. BadServerTooBusy) instead of the library's.
 */
export function checkUserNamesWith(
  server: OPCUAServer,
  begin: (session: ServerSession, channel: ActivatingChannel) => void,
  refusal: (session: ServerSession) => StatusCode | undefined,
): void {
  type Callback = (err: Error | null, ok?: boolean, status?: StatusCode) => void;
  type Check = (channel: unknown, session: unknown, policy: unknown, token: unknown, callback: Callback) => void;
  const s = server as unknown as { userNameIdentityTokenAuthenticateUser?: Check };
  if (typeof s.userNameIdentityTokenAuthenticateUser !== "function")
    fail("OPCUAServer.userNameIdentityTokenAuthenticateUser is missing");
  const original = s.userNameIdentityTokenAuthenticateUser.bind(server);
  s.userNameIdentityTokenAuthenticateUser = (channel, session, policy, token, callback) => {
    const c = channel as Partial<ActivatingChannel> | null;
    if (c && typeof c.once === "function" && typeof c.removeListener === "function")
      begin(session as ServerSession, c as ActivatingChannel);
    original(channel, session, policy, token, (err, ok, status) =>
      callback(err, ok, ok || status ? status : refusal(session as ServerSession)),
    );
  };
}

/**
 * onCertificateRefused: the certificate manager is where a client application certificate is judged
 * (the secure channel layer does not re-emit the verdict); `handler` hears each refusal with the
 * certificate's thumbprint. The manager's own result is unchanged.
 */
export function onCertificateRefused(
  cm: OPCUACertificateManager,
  handler: (thumbprint: string, status: string) => void,
): void {
  type Check = (
    chain: Buffer | Buffer[],
    callback?: (err: Error | null, status?: StatusLike) => void,
  ) => Promise<StatusLike> | undefined;
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

type Context = { session?: unknown } | null | undefined;

interface AccessorLike {
  browseNode(description: { nodeId?: unknown }, context: Context): Promise<BrowseResult>;
  readNode(context: Context, nodeToRead: { nodeId?: unknown }, ...rest: unknown[]): Promise<DataValue>;
  writeNode(context: Context, writeValue: { nodeId?: unknown }): Promise<unknown>;
  historyReadNode(context: Context, nodeToRead: { nodeId?: unknown }, ...rest: unknown[]): Promise<HistoryReadResult>;
  callMethod(context: Context, methodToCall: { objectId?: unknown; methodId?: unknown }): Promise<CallMethodResult>;
}

interface AddressSpaceLike {
  findNode(nodeId: unknown): { nodeId: NodeId } | null;
  browsePath(browsePath: BrowsePath): BrowsePathResult;
}

type SessionAction = (
  session: ServerSession,
  sendResponse: (response: unknown) => void,
  sendError: (status: unknown) => void,
) => Promise<void>;

/** translatingFor: while one TranslateBrowsePath is computed (synchronously), the session it is for. */
let translatingFor: { session: unknown; hidden: HiddenNode } | undefined;

/**
 * hideNodes: every service that names a node answers a node hidden from the session as if it did not
 * exist (Part 4 §7.34 BadNodeIdUnknown), and lists none (HOSTILE.md "names can be secrets"):
 *
 * - Browse and BrowseNext, Read (any attribute), Write, HistoryRead, Call: the server's
 *   AddressSpaceAccessor is where each node of those requests meets the session's context; a hidden
 *   starting node is BadNodeIdUnknown and hidden targets are left out of browse results before the
 *   continuation points are cut, so BrowseNext is filtered too;
 * - TranslateBrowsePathsToNodeIds: node-opcua resolves paths without a session; this server's handler
 *   resolves each path with hidden nodes absent from `findNode` (so a path cannot pass through one and
 *   come back) and drops hidden targets;
 * - RegisterNodes: a hidden node gets no alias, like a node that does not exist (`hideFromRegistration`);
 * - CreateMonitoredItems: `guardMonitoredItems`.
 */
export function hideNodes(server: OPCUAServer, hidden: HiddenNode): void {
  const engine = server.engine as unknown as {
    addressSpaceAccessor?: AccessorLike;
    addressSpace?: AddressSpaceLike;
    serverCapabilities?: { operationLimits?: { maxNodesPerTranslateBrowsePathsToNodeIds?: number } };
  };
  const accessor = engine.addressSpaceAccessor;
  if (!accessor) fail("ServerEngine.addressSpaceAccessor is missing");
  for (const m of ["browseNode", "readNode", "writeNode", "historyReadNode", "callMethod"] as const) {
    if (typeof accessor[m] !== "function") fail(`AddressSpaceAccessor.${m} is missing`);
  }
  const is = (context: Context, nodeId: unknown) => hiddenFrom(hidden, context?.session, nodeId);

  const browseNode = accessor.browseNode.bind(accessor);
  accessor.browseNode = async (description, context) => {
    if (is(context, description.nodeId)) return new BrowseResult({ statusCode: StatusCodes.BadNodeIdUnknown });
    const result = await browseNode(description, context);
    if (result.references?.length) result.references = result.references.filter((r) => !is(context, r.nodeId));
    return result;
  };
  const readNode = accessor.readNode.bind(accessor);
  accessor.readNode = (context, nodeToRead, ...rest) =>
    is(context, nodeToRead.nodeId)
      ? Promise.resolve(new DataValue({ statusCode: StatusCodes.BadNodeIdUnknown }))
      : readNode(context, nodeToRead, ...rest);
  const writeNode = accessor.writeNode.bind(accessor);
  accessor.writeNode = (context, writeValue) =>
    is(context, writeValue.nodeId) ? Promise.resolve(StatusCodes.BadNodeIdUnknown) : writeNode(context, writeValue);
  const historyReadNode = accessor.historyReadNode.bind(accessor);
  accessor.historyReadNode = (context, nodeToRead, ...rest) =>
    is(context, nodeToRead.nodeId)
      ? Promise.resolve(new HistoryReadResult({ statusCode: StatusCodes.BadNodeIdUnknown }))
      : historyReadNode(context, nodeToRead, ...rest);
  const callMethod = accessor.callMethod.bind(accessor);
  accessor.callMethod = (context, call) =>
    is(context, call.objectId) || is(context, call.methodId)
      ? Promise.resolve(new CallMethodResult({ statusCode: StatusCodes.BadNodeIdUnknown }))
      : callMethod(context, call);

  // TranslateBrowsePathsToNodeIds, with the session node-opcua does not pass down.
  const addressSpace = engine.addressSpace;
  if (!addressSpace || typeof addressSpace.findNode !== "function" || typeof addressSpace.browsePath !== "function")
    fail("AddressSpace.findNode / browsePath is missing");
  const findNode = addressSpace.findNode.bind(addressSpace);
  // An own property on this address space instance: browsePath looks up `this.findNode` for the
  // starting node and every intermediate one. Outside a translation it is the library's.
  addressSpace.findNode = (nodeId) => {
    const node = findNode(nodeId);
    return node && translatingFor && translatingFor.hidden(translatingFor.session, node.nodeId) ? null : node;
  };
  const s = server as unknown as {
    _on_TranslateBrowsePathsToNodeIdsRequest?: (
      message: { request: TranslateBrowsePathsToNodeIdsRequest },
      channel: unknown,
    ) => void;
    _apply_on_SessionObject?: (
      responseClass: unknown,
      message: unknown,
      channel: unknown,
      action: SessionAction,
    ) => Promise<void>;
  };
  if (typeof s._on_TranslateBrowsePathsToNodeIdsRequest !== "function")
    fail("OPCUAServer._on_TranslateBrowsePathsToNodeIdsRequest is missing");
  if (typeof s._apply_on_SessionObject !== "function") fail("OPCUAServer._apply_on_SessionObject is missing");
  const apply = s._apply_on_SessionObject.bind(server);
  s._on_TranslateBrowsePathsToNodeIdsRequest = (message, channel) => {
    const request = message.request;
    void apply(TranslateBrowsePathsToNodeIdsResponse, message, channel, async (session, sendResponse, sendError) => {
      const paths = request.browsePaths ?? [];
      if (paths.length === 0) return sendError(StatusCodes.BadNothingToDo);
      const limit = engine.serverCapabilities?.operationLimits?.maxNodesPerTranslateBrowsePathsToNodeIds ?? 0;
      if (limit > 0 && paths.length > limit) return sendError(StatusCodes.BadTooManyOperations);
      try {
        const results = paths.map((path) => {
          translatingFor = { session, hidden };
          let result: BrowsePathResult;
          try {
            result = addressSpace.browsePath(path);
          } finally {
            translatingFor = undefined;
          }
          if (result.targets?.length) {
            result.targets = result.targets.filter((t) => !hiddenFrom(hidden, session, t.targetId));
            if (result.targets.length === 0) result.statusCode = StatusCodes.BadNoMatch;
          }
          return result;
        });
        sendResponse(new TranslateBrowsePathsToNodeIdsResponse({ results }));
      } catch {
        sendError(StatusCodes.BadInternalError);
      }
    }).catch(() => undefined);
  };
}

/** hideFromRegistration: RegisterNodes gives a hidden node no alias, exactly like a node that does not exist. */
export function hideFromRegistration(session: ServerSession, hidden: HiddenNode): void {
  const s = session as unknown as { registerNode?: (nodeId: NodeId) => NodeId };
  if (typeof s.registerNode !== "function") fail("ServerSession.registerNode is missing");
  const register = s.registerNode.bind(session);
  s.registerNode = (nodeId) => (hidden(session, nodeId) ? nodeId : register(nodeId));
}

/**
 * reclaimAtSessionLimit: when CreateSession meets the session limit, node-opcua closes the oldest
 * session that was never activated (Part 4 §5.6.2), found by `engine.getOldestInactiveSession`. When
 * it finds none, `pick` offers one this server counts as unused: an activated session whose secure
 * channel is gone (its client died or lost the network), which the library would otherwise keep, and
 * count, until its timeout. The library closes it its usual way (subscriptions kept for a transfer
 * until their lifetime ends).
 */
export function reclaimAtSessionLimit(server: OPCUAServer, pick: () => ServerSession | undefined): void {
  const engine = server.engine as unknown as { getOldestInactiveSession?: () => ServerSession | null };
  if (typeof engine.getOldestInactiveSession !== "function") fail("ServerEngine.getOldestInactiveSession is missing");
  const oldestInactive = engine.getOldestInactiveSession.bind(engine);
  engine.getOldestInactiveSession = () => oldestInactive() ?? pick() ?? null;
}

/** onChannelLost: the session's secure channel ended (closed or broken) while the session lives on. */
export function onChannelLost(session: ServerSession, handler: () => void): void {
  const s = session as unknown as { on(event: "channel_aborted", h: () => void): void; status?: unknown };
  if (typeof s.on !== "function" || typeof s.status !== "string") fail("ServerSession changed shape (on / status)");
  s.on("channel_aborted", handler);
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
export function takeOverAccept(
  server: OPCUAServer,
  onSocket: (socket: Socket, endpoint: OpcuaAccept) => void,
  secured: (remote: string, port: number) => void,
  room: number,
): void {
  for (const ep of endpointsOf(server)) {
    const net = ep._server;
    if (!net || typeof net.listeners !== "function") fail("OPCUAServerEndPoint._server (its net.Server) is missing");
    if (typeof ep.activeChannelCount !== "number") fail("OPCUAServerEndPoint.activeChannelCount is missing");
    const [onConnection, ...rest] = net.listeners("connection") as ((socket: Socket) => void)[];
    if (typeof onConnection !== "function" || onConnection.name !== "bound _on_client_connection")
      fail("the endpoint's first connection listener is not _on_client_connection");
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
    if (net.listeners("connection").length !== rest.length + 1)
      fail("could not replace the endpoint's connection listener");
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

/** ns=0 ids of the server diagnostics that describe sessions (Part 5 §6.3.3, §12.10). */
const sessionDiagnosticsRoots = new Set([
  3706, // Server_ServerDiagnostics_SessionsDiagnosticsSummary (each session's object is a component of it)
  3707, // ..._SessionsDiagnosticsSummary_SessionDiagnosticsArray
  3708, // ..._SessionsDiagnosticsSummary_SessionSecurityDiagnosticsArray
  2290, // Server_ServerDiagnostics_SubscriptionDiagnosticsArray (every session's subscriptions, by session id)
]);

/**
 * sessionDiagnostics: is this node part of the diagnostics that describe sessions? node-opcua lists
 * every session under SessionsDiagnosticsSummary (its name, its client's application URI and name with
 * host names in them, connection times) and every subscription in SubscriptionDiagnosticsArray, to any
 * session that browses there. Names can be secrets (HOSTILE.md): these nodes are hidden from every
 * session (its own included) through `hideNodes`. The check walks up the node's parents (the session
 * objects live in the server's own namespace, below the summary); topic nodes (`Topics/...`) are
 * answered without the walk. Call it before `hideNodes` wraps the address space's findNode.
 */
export function sessionDiagnostics(server: OPCUAServer): (nodeId: NodeId) => boolean {
  const addressSpace = server.engine.addressSpace as unknown as {
    findNode(nodeId: NodeId): { nodeId: NodeId; parent: { nodeId: NodeId; parent: unknown } | null } | null;
    getOwnNamespace(): { index: number };
  } | null;
  if (!addressSpace || typeof addressSpace.findNode !== "function") fail("AddressSpace.findNode is missing");
  const findNode = addressSpace.findNode.bind(addressSpace);
  const own = addressSpace.getOwnNamespace().index;
  const isRoot = (id: NodeId) => id.namespace === 0 && sessionDiagnosticsRoots.has(id.value as number);
  return (nodeId) => {
    if (isRoot(nodeId)) return true;
    if (nodeId.namespace !== own) return false;
    if (nodeId.identifierType === NodeIdType.STRING && (nodeId.value as string).startsWith("Topics/")) return false;
    let node = findNode(nodeId)?.parent as { nodeId: NodeId; parent: unknown } | null | undefined;
    for (let depth = 0; node && depth < 16; depth++) {
      if (isRoot(node.nodeId)) return true;
      node = node.parent as typeof node;
    }
    return false;
  };
}
