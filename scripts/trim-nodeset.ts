/**
 * trim-nodeset: `bun scripts/trim-nodeset.ts` writes src/listeners/opcua/Opc.Ua.Gatehouse.ndjson.gz,
 * the OPC UA standard nodeset (node-opcua's precompiled image of Opc.Ua.NodeSet2) cut down to what a
 * data-access server uses. The full image costs ~40 MB of resident memory once loaded; most of it is
 * PubSub, GDS/push certificate management, alarms and conditions, programs, files and history types
 * this server never instantiates.
 *
 * Kept, with everything they need (closure below): the Server object and its whole subtree (every
 * mandatory and optional child a client or a conformance tool may read), the standard folders, every
 * ReferenceType, the modelling rules, the event types other than conditions, the base types, every
 * DataType that is not a structure, and each structure reachable from what is kept, with its
 * encodings. References to nodes left out are dropped,
 * so nothing dangles. test/listeners/opcua-nodeset.test.ts checks the committed file is this
 * script's output and that a client sees a complete Server object.
 */
import { gunzipSync, gzipSync } from "node:zlib";

type Ref = [forward: 0 | 1, referenceType: number, target: number, ns?: number];
interface Node {
  nodeClass: number;
  nodeId: number;
  browseName: [number, string];
  references: Ref[];
  parentNodeId?: number;
  dataType?: number;
  methodDeclarationId?: number;
  rolePermissions?: { roleId: number }[];
  definition?: { fields?: { dataType?: number }[] };
  [key: string]: unknown;
}

const source = new URL("../node_modules/node-opcua-nodesets/nodesets/Opc.Ua.NodeSet2.ndjson.gz", import.meta.url);
const target = new URL("../src/listeners/opcua/Opc.Ua.Gatehouse.ndjson.gz", import.meta.url);

const NodeClass = { ReferenceType: 32, DataType: 64 } as const;
const Ref = {
  Organizes: 35,
  HasModellingRule: 37,
  HasEncoding: 38,
  HasTypeDefinition: 40,
  HasSubtype: 45,
  HasProperty: 46,
  HasComponent: 47,
  HasOrderedComponent: 49,
} as const;
const children: Set<number> = new Set([Ref.HasComponent, Ref.HasProperty, Ref.HasOrderedComponent, Ref.Organizes]);
const Structure = 22;
const BaseEventType = 2041;
/** the folders of the type system: they organize every type, so only what is otherwise kept stays listed */
const typeFolders = new Set([86, 88, 89, 90, 91]);

/** the nodes every server keeps whatever it serves */
const seeds = [
  84, // Root
  85, // Objects
  86, // Types
  87, // Views
  88, // ObjectTypes
  89, // VariableTypes
  90, // DataTypes
  91, // ReferenceTypes
  2253, // Server
  77, // ModellingRules
  BaseEventType, // with its subtypes, conditions excepted
];
/** event types left out with their subtypes: alarms and conditions (this server raises none) */
const droppedEventTypes = new Set([2782 /* ConditionType */]);

/** imageNodes: the node lines of a node-opcua nodeset image, by numeric id (namespace 0) */
export function imageNodes(image: Uint8Array): Map<number, Node> {
  const lines = gunzipSync(image).toString("utf8").split("\n").filter(Boolean);
  return new Map(
    lines
      .slice(1, -1)
      .map((l) => JSON.parse(l) as Node)
      .map((n) => [n.nodeId, n]),
  );
}

export function trimNodeset(image: Uint8Array): Uint8Array {
  const lines = gunzipSync(image).toString("utf8").split("\n").filter(Boolean);
  const header = JSON.parse(lines[0]!) as { kind: string };
  const trailer = JSON.parse(lines.at(-1)!) as { kind: string; nodes: number };
  if (header.kind !== "header" || trailer.kind !== "trailer")
    throw new Error("trim-nodeset: not a node-opcua nodeset image");
  const nodes = imageNodes(image);
  const supertypeOf = new Map<number, number>();
  const subtypesOf = new Map<number, number[]>();
  for (const n of nodes.values()) {
    for (const [fwd, type, to] of n.references) {
      if (fwd || type !== Ref.HasSubtype) continue;
      supertypeOf.set(n.nodeId, to);
      subtypesOf.set(to, [...(subtypesOf.get(to) ?? []), n.nodeId]);
    }
  }

  const keep = new Set<number>();
  const queue: number[] = [];
  const add = (id: number | undefined) => {
    if (id === undefined || keep.has(id) || !nodes.has(id)) return;
    keep.add(id);
    queue.push(id);
  };
  // every DataType that is not a Structure: the built-in, simple and enumerated types a client may
  // write or a type check walks (a Boolean written to a Double is judged against this hierarchy)
  const isStructure = (id: number | undefined): boolean =>
    id !== undefined && (id === Structure || isStructure(supertypeOf.get(id)));
  for (const n of nodes.values()) {
    if (n.nodeClass === NodeClass.ReferenceType || (n.nodeClass === NodeClass.DataType && !isStructure(n.nodeId)))
      add(n.nodeId);
  }
  for (const id of seeds) add(id);
  // every event type but conditions: a server that audits or reports model changes raises them
  const events = [BaseEventType];
  while (events.length) {
    for (const sub of subtypesOf.get(events.pop()!) ?? []) {
      if (droppedEventTypes.has(sub)) continue;
      add(sub);
      events.push(sub);
    }
  }
  // the type-system folders list their roots (BaseObjectType, BaseDataType, References, ...)
  for (const id of typeFolders)
    for (const [fwd, type, to] of nodes.get(id)!.references) if (fwd && type === Ref.Organizes) add(to);

  while (queue.length) {
    const n = nodes.get(queue.pop()!)!;
    for (const [fwd, type, to] of n.references) {
      if (
        fwd
          ? type === Ref.HasTypeDefinition || type === Ref.HasModellingRule || type === Ref.HasEncoding
          : type === Ref.HasSubtype
      )
        add(to);
      // an instance's children (the Server subtree), and a type's instance declarations
      else if (
        fwd &&
        children.has(type) &&
        n.nodeClass !== NodeClass.DataType &&
        n.nodeClass !== NodeClass.ReferenceType &&
        !typeFolders.has(n.nodeId)
      )
        add(to);
    }
    add(n.dataType);
    add(n.methodDeclarationId);
    for (const p of n.rolePermissions ?? []) add(p.roleId);
    for (const f of n.definition?.fields ?? []) add(f.dataType);
  }

  const out = [lines[0]!];
  for (const n of nodes.values()) {
    if (!keep.has(n.nodeId)) continue;
    const references = n.references.filter(([, type, to]) => keep.has(to) && keep.has(type));
    out.push(JSON.stringify({ ...n, references }));
  }
  out.push(JSON.stringify({ ...trailer, nodes: out.length - 1 }));
  return gzipSync(`${out.join("\n")}\n`, { level: 9 });
}

if (import.meta.main) {
  const trimmed = trimNodeset(new Uint8Array(await Bun.file(source).arrayBuffer()));
  await Bun.write(target, trimmed);
  console.log(
    `trim-nodeset: ${target.pathname.split("/").slice(-4).join("/")}: ${imageNodes(trimmed).size} nodes, ${(trimmed.length / 1024).toFixed(0)} KB`,
  );
}
