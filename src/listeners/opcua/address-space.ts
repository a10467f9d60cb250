import type { AddressSpace, UAObject, UAVariable } from "node-opcua-address-space";
import { DataValue } from "node-opcua-data-value";
import { NodeIdType, resolveNodeId, type NodeId } from "node-opcua-nodeid";
import { PermissionType } from "node-opcua-types";
import { StatusCodes } from "node-opcua-status-code";
import { DataType, Variant } from "node-opcua-variant";
import { BusNotStoredError, type TopicBus } from "../../core/bus.ts";
import { mayRead, mayWrite, type TopicSpace } from "../../core/permissions.ts";
import { integrationTypeInfo, integrationTypes, type Integration, type IntegrationType } from "../../core/types.ts";
import type { TrafficMeter } from "../../core/traffic.ts";
import type { Logger } from "../../lib/logger.ts";
import { meterValueAccess, overridePermissionCheck } from "./node-opcua-internals.ts";

interface TopicNode {
  topic: string;
  variable: UAVariable;
  value: DataValue;
  /** fixed by the first payload */
  kind?: TopicKind;
  /** the next level's nodes (`a/b` under `a`) */
  children: TopicNode[];
}

/** TopicMirror: the Topics mirror, as the server needs it beyond the address space. */
export interface TopicMirror {
  /** stop: detaches from the broker */
  stop(): void;
  /** invalidate: what a session may see must be worked out again (an integration or a VRPC domain changed) */
  invalidate(): void;
  /**
   * isHidden: the node is a topic node this session may not see (HOSTILE.md "names can be secrets"):
   * neither it nor any topic below it is readable by the session's integration as it is now.
   */
  isHidden(session: unknown, nodeId: NodeId): boolean;
}

/** StatusSource: the numbers the read-only Status object shows. */
export interface StatusSource {
  integrations(): number;
  onlineByType(): Record<IntegrationType, number>;
  startedAt: number;
}

interface Context {
  version: string;
  status: StatusSource;
  bus?: TopicBus;
  integrationOf(session: unknown): Readonly<Integration> | undefined;
  /** meterOf: the session's traffic meter (its integration's traffic on the page, the API, /metrics) */
  meterOf(session: unknown): TrafficMeter | undefined;
  /** the VRPC domains the permissions shield */
  topicSpace: TopicSpace;
  log: Logger;
}

/** payloadToVariant: numbers and booleans keep their type; anything else is a string. */
export function payloadToVariant(payload: Buffer): Variant {
  const text = payload.toString("utf8");
  if (/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text.trim()) && Number.isFinite(Number(text)))
    return new Variant({ dataType: DataType.Double, value: Number(text) });
  if (text === "true" || text === "false") return new Variant({ dataType: DataType.Boolean, value: text === "true" });
  return new Variant({ dataType: DataType.String, value: text });
}

/** TopicKind: the one DataType a topic's variable keeps once it has a value (the first payload's). */
export type TopicKind = "Double" | "Boolean" | "String";

/**
 * coercePayload: a payload as the variable's kind, by a fixed rule: numbers stay numbers and `true` /
 * `false` count as 1 / 0 in a Double; a Boolean takes `true`, `false`, `1`, `0`; a String takes any
 * text; anything else is BadTypeMismatch (the variable keeps its type; the value is withheld).
 */
export function coercePayload(kind: TopicKind, payload: Buffer): Variant | undefined {
  const v = payloadToVariant(payload);
  const text = payload.toString("utf8").trim();
  switch (kind) {
    case "String":
      return new Variant({ dataType: DataType.String, value: payload.toString("utf8") });
    case "Double":
      if (v.dataType === DataType.Double) return v;
      if (v.dataType === DataType.Boolean) return new Variant({ dataType: DataType.Double, value: v.value ? 1 : 0 });
      return undefined;
    case "Boolean":
      if (text === "true" || text === "1") return new Variant({ dataType: DataType.Boolean, value: true });
      if (text === "false" || text === "0") return new Variant({ dataType: DataType.Boolean, value: false });
      return undefined;
  }
}

export function variantToPayload(v: Variant): Buffer {
  const value = v.value;
  if (value === null || value === undefined) return Buffer.alloc(0);
  // A Float holds 1.1 as 1.100000023841858: publish the shortest text that reads back as the same Float.
  if (v.dataType === DataType.Float && typeof value === "number")
    return Buffer.from(String(Number(value.toPrecision(7))));
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Date) return Buffer.from(value.toISOString());
  return Buffer.from(typeof value === "object" ? JSON.stringify(value) : String(value));
}

/**
 * buildAddressSpace: `Objects/Gatehouse` with a read-only `Status` and a `Topics` folder mirroring
 * the broker's retained messages (one variable per topic level). Reading a topic needs the
 * session's integration to be allowed to subscribe to it, writing to publish to it: the same
 * permissions as over MQTT. A topic node (and a level above topics) that a session may not read is
 * absent to that session: `isHidden` tells the server which, for every service that names nodes.
 */
export async function buildAddressSpace(addressSpace: AddressSpace, ctx: Context): Promise<TopicMirror> {
  const ns = addressSpace.getOwnNamespace();
  const objects = addressSpace.rootFolder.objects;
  const gatehouse = ns.addObject({ organizedBy: objects, browseName: "Gatehouse", nodeId: "s=Gatehouse" });

  const status = ns.addObject({ componentOf: gatehouse, browseName: "Status", nodeId: "s=Gatehouse/Status" });
  const readOnly = (browseName: string, dataType: DataType, get: () => unknown) =>
    ns.addVariable({
      componentOf: status,
      browseName,
      nodeId: `s=Gatehouse/Status/${browseName}`,
      dataType: DataType[dataType],
      accessLevel: "CurrentRead",
      userAccessLevel: "CurrentRead",
      minimumSamplingInterval: 1000,
      value: { get: () => new Variant({ dataType, value: get() }) },
    });
  readOnly("Version", DataType.String, () => ctx.version);
  readOnly("Uptime", DataType.Double, () => (Date.now() - ctx.status.startedAt) / 1000);
  readOnly("IntegrationsCount", DataType.UInt32, () => ctx.status.integrations());
  for (const type of integrationTypes) {
    readOnly(`Online${integrationTypeInfo[type].name}`, DataType.UInt32, () => ctx.status.onlineByType()[type]);
  }

  const topicsFolder = ns.addObject({
    componentOf: gatehouse,
    typeDefinition: "FolderType",
    browseName: "Topics",
    nodeId: "s=Gatehouse/Topics",
  });
  const nodes = new Map<string, TopicNode>();
  /** writer: the integration whose Write is running now (node-opcua calls a variable's setter without a session) */
  let writer: Readonly<Integration> | undefined;
  // Numbers are published as Double; a numeric topic's variable is typed Number (abstract) so a client
  // may also write a Float or an integer to it. A Boolean is not a Number: refused (BadTypeMismatch).
  const dataTypeOf: Record<TopicKind, NodeId> = {
    Double: resolveNodeId("Number"),
    Boolean: resolveNodeId("Boolean"),
    String: resolveNodeId("String"),
  };

  /** nodeFor: the variable of a topic, creating its parent levels on the way. */
  const nodeFor = (topic: string): TopicNode => {
    const existing = nodes.get(topic);
    if (existing) return existing;
    const levels = topic.split("/");
    const parentTopic = levels.slice(0, -1).join("/");
    const parent: UAObject | UAVariable = levels.length > 1 ? nodeFor(parentTopic).variable : topicsFolder;
    const entry = {
      topic,
      children: [],
      value: new DataValue({
        statusCode: StatusCodes.UncertainInitialValue,
        value: new Variant({ dataType: DataType.Null }),
      }),
    } as unknown as TopicNode;
    const variable = ns.addVariable({
      ...(levels.length > 1 ? { componentOf: parent } : { organizedBy: parent }),
      browseName: levels.at(-1) || "(empty)",
      nodeId: `s=Topics/${topic}`,
      dataType: "BaseDataType",
      accessLevel: "CurrentRead | CurrentWrite",
      userAccessLevel: "CurrentRead | CurrentWrite",
      minimumSamplingInterval: 0, // exception-based: every publish is a change (setValueFromSource notifies)
      value: {
        timestamped_get: () => entry.value,
        timestamped_set: async (dataValue: DataValue) => {
          if (!ctx.bus?.available) return StatusCodes.BadNotWritable;
          const payload = variantToPayload(dataValue.value);
          // the broker's packet limit holds for every way in (node-opcua's transport caps the message too)
          if (payload.length > ctx.bus.maxPayloadBytes) return StatusCodes.BadEncodingLimitsExceeded;
          // charged to the writing session's integration (its share of the broker store), as an HTTP post is
          const by = writer && { id: writer.id, created: writer.createdAt };
          try {
            await ctx.bus.publish({ topic, payload, retain: true, by });
          } catch (err) {
            // Good means stored: the broker's store refused it (a full disk), so the write did not happen
            if (err instanceof BusNotStoredError) return StatusCodes.BadResourceUnavailable;
            throw err;
          }
          ctx.log.info("opc ua write published", { topic: topic.slice(0, 256) });
          return StatusCodes.Good;
        },
      },
    });
    // Topic permissions as OPC UA permissions, so a refusal is BadUserAccessDenied (Part 4 §7.34).
    overridePermissionCheck(variable, (context, permission) => {
      if (permission === PermissionType.Read)
        return mayRead(ctx.integrationOf(context?.session), topic, ctx.topicSpace);
      if (permission === PermissionType.Write)
        return mayWrite(ctx.integrationOf(context?.session), topic, ctx.topicSpace);
      return undefined;
    });
    // Each integration's traffic: a Read answered with the value is a message out, a Write that
    // published a message in, a Write the permissions refused a refused publish (as over MQTT).
    meterValueAccess(variable, {
      writing: (context) => {
        writer = ctx.integrationOf(context.session);
      },
      written: () => {
        writer = undefined;
      },
      read: (context, dv) => {
        if (!dv.statusCode.isBad()) ctx.meterOf(context?.session)?.delivered(variantToPayload(dv.value).length);
      },
      write: (context, dv, status) => {
        const meter = ctx.meterOf(context?.session);
        if (status === StatusCodes.Good) meter?.received(dv ? variantToPayload(dv.value).length : 0);
        else if (status === StatusCodes.BadUserAccessDenied) meter?.refused();
      },
    });
    entry.variable = variable;
    nodes.set(topic, entry);
    if (levels.length > 1) nodes.get(parentTopic)!.children.push(entry);
    generation++;
    return entry;
  };

  // Visibility, per integration as stored now (a changed integration is a new object, so its answers
  // are recomputed) and per generation of the tree (a new topic may make a level visible).
  let generation = 0;
  const visibility = new WeakMap<Readonly<Integration>, { generation: number; seen: Map<TopicNode, boolean> }>();
  const visibleTo = (integration: Readonly<Integration>, node: TopicNode): boolean => {
    let memo = visibility.get(integration);
    if (!memo || memo.generation !== generation) visibility.set(integration, (memo = { generation, seen: new Map() }));
    const seen = memo.seen;
    const walk = (n: TopicNode): boolean => {
      let v = seen.get(n);
      if (v === undefined) seen.set(n, (v = mayRead(integration, n.topic, ctx.topicSpace) || n.children.some(walk)));
      return v;
    };
    return walk(node);
  };
  const isHidden = (session: unknown, nodeId: NodeId): boolean => {
    if (nodeId.namespace !== ns.index || nodeId.identifierType !== NodeIdType.STRING) return false;
    const id = nodeId.value as string;
    if (!id.startsWith("Topics/")) return false;
    const node = nodes.get(id.slice("Topics/".length));
    if (!node) return false; // absent for everyone: the library says so itself
    const integration = ctx.integrationOf(session);
    return !integration || !visibleTo(integration, node);
  };

  const update = (topic: string, payload: Buffer) => {
    // Empty retained payload clears a retained message [MQTT-3.3.1-10]; the variable stays, empty.
    if (topic.length > 1024 || topic.split("/").length > 32) return; // keep the address space bounded
    const entry = nodeFor(topic);
    const now = new Date();
    if (payload.length === 0)
      return setValue(
        entry,
        new Variant({ dataType: DataType.Null }),
        StatusCodes.UncertainNoCommunicationLastUsableValue,
        now,
      );
    if (!entry.kind) {
      // The first payload fixes the variable's DataType for good (a parent level had none until now).
      const first = payloadToVariant(payload);
      entry.kind =
        first.dataType === DataType.Double ? "Double" : first.dataType === DataType.Boolean ? "Boolean" : "String";
      (entry.variable as { dataType: NodeId }).dataType = dataTypeOf[entry.kind];
    }
    const value = coercePayload(entry.kind, payload);
    if (value) setValue(entry, value, StatusCodes.Good, now);
    else setValue(entry, new Variant({ dataType: DataType.Null }), StatusCodes.BadTypeMismatch, now);
  };

  /** setValue: the new value, announced to monitored items (exception-based ones included). */
  const setValue = (entry: TopicNode, value: Variant, status: typeof StatusCodes.Good, at: Date) => {
    entry.value = new DataValue({ value, statusCode: status, sourceTimestamp: at, serverTimestamp: at });
    try {
      entry.variable.setValueFromSource(value, status, at);
    } catch {
      // node-opcua refused the variant for this DataType: readers still get entry.value and its status
    }
  };

  const invalidate = () => void generation++;
  if (!ctx.bus) return { stop: () => {}, isHidden, invalidate };
  const stop = ctx.bus.onMessage(({ topic, payload, retain }) => {
    if (retain || nodes.has(topic)) update(topic, payload);
  });
  for await (const { topic, payload } of ctx.bus.retained()) update(topic, payload);
  return { stop, isHidden, invalidate };
}
