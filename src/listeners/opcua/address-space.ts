import type { AddressSpace, ISessionContext, UAObject, UAVariable } from "node-opcua-address-space";
import { DataValue } from "node-opcua-data-value";
import { resolveNodeId, type NodeId } from "node-opcua-nodeid";
import { PermissionType } from "node-opcua-types";
import { StatusCodes } from "node-opcua-status-code";
import { DataType, Variant } from "node-opcua-variant";
import type { TopicBus } from "../../core/bus.ts";
import { mayRead, mayWrite } from "../../core/permissions.ts";
import { integrationTypeInfo, integrationTypes, type Integration, type IntegrationType } from "../../core/types.ts";
import type { Logger } from "../../lib/logger.ts";
import { overridePermissionCheck } from "./node-opcua-internals.ts";

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
  log: Logger;
}

/** payloadToVariant: numbers and booleans keep their type; anything else is a string. */
export function payloadToVariant(payload: Buffer): Variant {
  const text = payload.toString("utf8");
  if (/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text.trim()) && Number.isFinite(Number(text))) return new Variant({ dataType: DataType.Double, value: Number(text) });
  if (text === "true" || text === "false") return new Variant({ dataType: DataType.Boolean, value: text === "true" });
  return new Variant({ dataType: DataType.String, value: text });
}

export function variantToPayload(v: Variant): Buffer {
  const value = v.value;
  if (value === null || value === undefined) return Buffer.alloc(0);
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Date) return Buffer.from(value.toISOString());
  return Buffer.from(typeof value === "object" ? JSON.stringify(value) : String(value));
}

/**
 * buildAddressSpace: `Objects/Gatehouse` with a read-only `Status` and a `Topics` folder mirroring
 * the broker's retained messages (one variable per topic level). Reading a topic needs the
 * session's integration to be allowed to subscribe to it, writing to publish to it: the same
 * permissions as over MQTT. Returns a function that detaches from the broker.
 */
export async function buildAddressSpace(addressSpace: AddressSpace, ctx: Context): Promise<() => void> {
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

  const topicsFolder = ns.addObject({ componentOf: gatehouse, typeDefinition: "FolderType", browseName: "Topics", nodeId: "s=Gatehouse/Topics" });
  const nodes = new Map<string, { variable: UAVariable; value: DataValue }>();
  const booleanType = resolveNodeId("Boolean");
  const anyType = resolveNodeId("BaseDataType");


  /** nodeFor: the variable of a topic, creating its parent levels on the way. */
  const nodeFor = (topic: string): { variable: UAVariable; value: DataValue } => {
    const existing = nodes.get(topic);
    if (existing) return existing;
    const levels = topic.split("/");
    const parentTopic = levels.slice(0, -1).join("/");
    const parent: UAObject | UAVariable = levels.length > 1 ? nodeFor(parentTopic).variable : topicsFolder;
    const entry = { value: new DataValue({ statusCode: StatusCodes.UncertainInitialValue, value: new Variant({ dataType: DataType.Null }) }) } as { variable: UAVariable; value: DataValue };
    const variable = ns.addVariable({
      ...(levels.length > 1 ? { componentOf: parent } : { organizedBy: parent }),
      browseName: levels.at(-1) || "(empty)",
      nodeId: `s=Topics/${topic}`,
      dataType: "BaseDataType",
      accessLevel: "CurrentRead | CurrentWrite",
      userAccessLevel: "CurrentRead | CurrentWrite",
      minimumSamplingInterval: 0, // values change on publish; touchValue() notifies subscriptions
      value: {
        timestamped_get: () => entry.value,
        timestamped_set: async (dataValue: DataValue) => {
          if (!ctx.bus?.available) return StatusCodes.BadNotWritable;
          await ctx.bus.publish({ topic, payload: variantToPayload(dataValue.value), retain: true });
          ctx.log.info("opc ua write published", { topic: topic.slice(0, 256) });
          return StatusCodes.Good;
        },
      },
    });
    // Topic permissions as OPC UA permissions, so a refusal is BadUserAccessDenied (Part 4 §7.34).
    overridePermissionCheck(variable, (context, permission) => {
      if (permission === PermissionType.Read) return mayRead(ctx.integrationOf(context?.session), topic);
      if (permission === PermissionType.Write) return mayWrite(ctx.integrationOf(context?.session), topic);
      return undefined;
    });
    entry.variable = variable;
    nodes.set(topic, entry);
    return entry;
  };

  const update = (topic: string, payload: Buffer) => {
    // Empty retained payload clears a retained message [MQTT-3.3.1-10]; the variable stays, empty.
    if (topic.length > 1024 || topic.split("/").length > 32) return; // keep the address space bounded
    const entry = nodeFor(topic);
    const now = new Date();
    const value = payloadToVariant(payload);
    // node-opcua accepts a Boolean only in a Boolean-typed variable; a topic's payload type can
    // change, so its variable's DataType follows the value it holds now.
    const dataType = value.dataType === DataType.Boolean ? booleanType : anyType;
    if (entry.variable.dataType.toString() !== dataType.toString()) (entry.variable as { dataType: NodeId }).dataType = dataType;
    entry.value = new DataValue({ value, statusCode: StatusCodes.Good, sourceTimestamp: now, serverTimestamp: now });
    entry.variable.touchValue?.();
  };

  if (!ctx.bus) return () => {};
  const stop = ctx.bus.onMessage(({ topic, payload, retain }) => {
    if (retain || nodes.has(topic)) update(topic, payload);
  });
  for await (const { topic, payload } of ctx.bus.retained()) update(topic, payload);
  return stop;
}
