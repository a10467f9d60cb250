import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import {
  AttributeIds,
  BrowseDirection,
  makeBrowsePath,
  TimestampsToReturn,
  type ReferenceDescription,
} from "node-opcua-client";
import type { App } from "../../src/app.ts";
import { cleanupTempDirs, testApp } from "../helpers/app.ts";
import { connectMqtt } from "../helpers/mqtt.ts";
import { connectOpcua, DataType, readValue, type OpcuaConnection } from "../helpers/opcua.ts";
import { eventually } from "../helpers/wait.ts";

// HOSTILE.md "names can be secrets": listing topics is a read. A session sees the Topics nodes it may
// read, and the levels above them; every other topic node is absent to it in every service.

let app: App;
let port: number;
beforeAll(async () => {
  ({ app } = await testApp());
  port = app.address("opcua")!.port;
}, 60_000);
afterAll(async () => {
  await app.stop();
  cleanupTempDirs();
});

const topic = (t: string) => `ns=1;s=Topics/${t}`;
const topicsFolder = "ns=1;s=Gatehouse/Topics";

async function opcuaUser(
  username: string,
  acl: { publishAcl?: string[]; subscribeAcl?: string[]; denySubscribeAcl?: string[] } = {},
) {
  const made = await app.core.credentials.create({ type: "opcua", username });
  if (Object.keys(acl).length) app.core.credentials.update(made.integration.id, acl);
  return { ...(await connectOpcua(port, { userName: username, password: made.password })), id: made.integration.id };
}

/** names: every browse name under a node, following continuation points one reference at a time. */
async function names(c: OpcuaConnection, nodeId: string): Promise<string[]> {
  const refs: ReferenceDescription[] = [];
  c.session.requestedMaxReferencesPerNode = 1; // BrowseNext must filter as Browse does
  let result = await c.session.browse({
    nodeId,
    browseDirection: BrowseDirection.Forward,
    referenceTypeId: "HierarchicalReferences",
    includeSubtypes: true,
    resultMask: 63,
  });
  expect(result.statusCode.name).toBe("Good");
  refs.push(...(result.references ?? []));
  while (result.continuationPoint && result.continuationPoint.length) {
    result = await c.session.browseNext(result.continuationPoint, false);
    refs.push(...(result.references ?? []));
  }
  return refs.map((r) => r.browseName.name ?? "").sort();
}

const secretTopics = ["vault/recipe-secret-x/temp", "shared/recipe-secret-y/temp"];
const publicTopics = ["shared/public/temp", "shared/value"];

describe("OPC UA shows a session only the topics it may read", () => {
  let reader: Awaited<ReturnType<typeof opcuaUser>>;
  let everything: Awaited<ReturnType<typeof opcuaUser>>;
  beforeAll(async () => {
    const pub = await app.core.credentials.create({ type: "mqtt", username: "visibility-pub" });
    const m = await connectMqtt(app.address("mqtt")!.port, { username: "visibility-pub", password: pub.password });
    for (const t of [...secretTopics, ...publicTopics]) await m.publishAsync(t, "21", { retain: true, qos: 1 });
    await m.endAsync();
    reader = await opcuaUser("visibility-reader", {
      subscribeAcl: ["shared/public/#", "shared/value"],
      publishAcl: ["#"],
    });
    everything = await opcuaUser("visibility-all");
    for (const t of [...secretTopics, ...publicTopics])
      await eventually(async () => expect((await readValue(everything.session, topic(t))).value.value).toBe(21));
  }, 30_000);
  afterAll(async () => {
    await reader.close();
    await everything.close();
  });

  it("Browse and BrowseNext list only readable topics and the levels above them", async () => {
    expect(await names(everything, topicsFolder)).toEqual(expect.arrayContaining(["shared", "vault"]));
    const top = await names(reader, topicsFolder);
    expect(top).toContain("shared");
    expect(top).not.toContain("vault");
    // a level that holds only unreadable topics is as absent as they are
    expect(await names(reader, topic("shared"))).toEqual(["public", "value"]);
    expect(await names(everything, topic("shared"))).toEqual(["public", "recipe-secret-y", "value"]);
    expect(await names(reader, topic("shared/public"))).toEqual(["temp"]);
  });

  it("every attribute of an unreadable topic node is BadNodeIdUnknown, as for a node that does not exist", async () => {
    const attributes = [
      AttributeIds.NodeId,
      AttributeIds.NodeClass,
      AttributeIds.BrowseName,
      AttributeIds.DisplayName,
      AttributeIds.DataType,
      AttributeIds.AccessLevel,
      AttributeIds.UserAccessLevel,
      AttributeIds.Value,
    ];
    for (const t of ["vault", "vault/recipe-secret-x", ...secretTopics, "shared/recipe-secret-y"]) {
      const read = await reader.session.read(attributes.map((attributeId) => ({ nodeId: topic(t), attributeId })));
      expect([t, read.map((d) => d.statusCode.name)]).toEqual([t, attributes.map(() => "BadNodeIdUnknown")]);
      expect(JSON.stringify(read.map((d) => d.value.value))).not.toContain("recipe-secret");
    }
    expect(
      (await reader.session.read({ nodeId: topic("nowhere/at-all"), attributeId: AttributeIds.BrowseName })).statusCode
        .name,
    ).toBe("BadNodeIdUnknown");
    // the levels above a readable topic are there; their own value is not readable
    expect(
      (await reader.session.read({ nodeId: topic("shared"), attributeId: AttributeIds.BrowseName })).value.value.name,
    ).toBe("shared");
    expect((await readValue(reader.session, topic("shared/public/temp"))).value.value).toBe(21);
  });

  it("Browse from, Write to and HistoryRead of an unreadable topic node are BadNodeIdUnknown", async () => {
    const browsed = await reader.session.browse({
      nodeId: topic("shared/recipe-secret-y"),
      browseDirection: BrowseDirection.Both,
      resultMask: 63,
    });
    expect(browsed.statusCode.name).toBe("BadNodeIdUnknown");
    expect(browsed.references ?? []).toEqual([]);
    // it may publish anywhere, but a node it cannot see is not there to write to
    const written = await reader.session.write({
      nodeId: topic(secretTopics[0]!),
      attributeId: AttributeIds.Value,
      value: { value: { dataType: DataType.Double, value: 1 } },
    });
    expect(written.name).toBe("BadNodeIdUnknown");
    // (no topic keeps history: what a readable one answers differs from what an absent one does)
    const history = await reader.session.readHistoryValue(topic(secretTopics[0]!), new Date(0), new Date());
    expect(history.statusCode.name).toBe("BadNodeIdUnknown");
    expect(
      (await everything.session.readHistoryValue(topic(secretTopics[0]!), new Date(0), new Date())).statusCode.name,
    ).not.toBe("BadNodeIdUnknown");
  });

  it("TranslateBrowsePathsToNodeIds finds no unreadable topic, not even on the way to a readable one", async () => {
    const translate = async (c: OpcuaConnection, start: string, path: string) => {
      const [r] = await c.session.translateBrowsePath([makeBrowsePath(start, path)]);
      return { status: r!.statusCode.name, targets: (r!.targets ?? []).map((t) => t.targetId.toString()) };
    };
    expect(await translate(everything, topicsFolder, "/1:shared/1:recipe-secret-y")).toMatchObject({ status: "Good" });
    expect(await translate(reader, topicsFolder, "/1:shared/1:recipe-secret-y")).toEqual({
      status: "BadNoMatch",
      targets: [],
    });
    expect(await translate(reader, topicsFolder, "/1:vault")).toEqual({ status: "BadNoMatch", targets: [] });
    expect((await translate(reader, topicsFolder, "/1:shared/1:public/1:temp")).targets).toEqual([
      "ns=1;s=Topics/shared/public/temp",
    ]);
    // down into a hidden level and back up: the answer must not tell that the hidden level exists
    expect(await translate(reader, topic("shared"), "/1:recipe-secret-y<!HierarchicalReferences>1:shared")).toEqual({
      status: "BadNoMatch",
      targets: [],
    });
    expect(
      (await translate(everything, topic("shared"), "/1:recipe-secret-y<!HierarchicalReferences>1:shared")).status,
    ).toBe("Good");
    // starting from a hidden node
    expect((await translate(reader, topic("shared/recipe-secret-y"), "/1:temp")).status).toBe("BadNodeIdUnknown");
  });

  it("RegisterNodes gives an unreadable topic node no alias, like a node that does not exist", async () => {
    const ids = await reader.session.registerNodes([
      topic(secretTopics[0]!),
      topic("nowhere/at-all"),
      topic(publicTopics[0]!),
    ]);
    expect(ids.map((id) => id.toString())).toEqual([
      topic(secretTopics[0]!),
      topic("nowhere/at-all"),
      expect.stringMatching(/^ns=9999;/),
    ]);
  });

  it("a monitored item on an unreadable topic node is refused at creation", async () => {
    const sub = await reader.session.createSubscription2({
      requestedPublishingInterval: 100,
      requestedMaxKeepAliveCount: 10,
      publishingEnabled: true,
    });
    // the raw service, so each item's own status is seen (ClientSubscription.monitor retries and hides it)
    const session = reader.session as unknown as {
      createMonitoredItems(r: unknown): Promise<{ results?: { statusCode: { name: string } }[] }>;
    };
    const created = await session.createMonitoredItems({
      subscriptionId: sub.subscriptionId,
      timestampsToReturn: TimestampsToReturn.Both,
      itemsToCreate: [secretTopics[1]!, "shared/recipe-secret-y", publicTopics[0]!].map((t, i) => ({
        itemToMonitor: { nodeId: topic(t), attributeId: AttributeIds.Value },
        monitoringMode: 2,
        requestedParameters: { clientHandle: i + 1, samplingInterval: 0, queueSize: 10, discardOldest: true },
      })),
    });
    expect(created.results!.map((r) => r.statusCode.name)).toEqual(["BadNodeIdUnknown", "BadNodeIdUnknown", "Good"]);
    await sub.terminate();
  });
});

// Finding F7: server diagnostics named every other session (its name, its client's application URI and
// name, host names in them, connection times). A session sees none of them.
describe("OPC UA server diagnostics do not show other sessions", () => {
  const summary = "ns=0;i=3706"; // Server_ServerDiagnostics_SessionsDiagnosticsSummary
  const sessionArray = "ns=0;i=3707"; // ..._SessionDiagnosticsArray
  const securityArray = "ns=0;i=3708"; // ..._SessionSecurityDiagnosticsArray
  const subscriptionArray = "ns=0;i=2290"; // Server_ServerDiagnostics_SubscriptionDiagnosticsArray
  let looker: Awaited<ReturnType<typeof opcuaUser>>;
  let other: Awaited<ReturnType<typeof opcuaUser>>;
  beforeAll(async () => {
    other = await opcuaUser("diagnostics-other");
    await other.session.createSubscription2({ requestedPublishingInterval: 1000, publishingEnabled: true });
    looker = await opcuaUser("diagnostics-looker");
  }, 30_000);
  afterAll(async () => {
    await looker.close();
    await other.close();
  });

  it("the sessions summary, its arrays, each session's object and the subscription array are absent in every service", async () => {
    const otherSession = other.session.sessionId.toString();
    // Browse of ServerDiagnostics lists no summary; Browse of the summary and of the other session's object fail
    expect(await names(looker, "ns=0;i=2274")).not.toContain("SessionsDiagnosticsSummary");
    for (const nodeId of [summary, otherSession]) {
      const r = await looker.session.browse({ nodeId, browseDirection: BrowseDirection.Forward, resultMask: 63 });
      expect(r.statusCode.name).toBe("BadNodeIdUnknown");
    }
    // Read of the arrays and of the other session's object: BadNodeIdUnknown, nothing of the other client
    const read = await looker.session.read(
      [sessionArray, securityArray, subscriptionArray, otherSession, summary].map((nodeId) => ({
        nodeId,
        attributeId: AttributeIds.Value,
      })),
    );
    for (const r of read) expect(r.statusCode.name).toBe("BadNodeIdUnknown");
    expect(JSON.stringify(read)).not.toContain("urn:gatehouse-test:"); // the clients' application URIs
    // TranslateBrowsePathsToNodeIds does not find the summary either
    const [path] = await looker.session.translateBrowsePath([
      makeBrowsePath("i=2253", "/ServerDiagnostics/SessionsDiagnosticsSummary/SessionDiagnosticsArray"),
    ]);
    expect(path!.statusCode.name).not.toBe("Good");
    // a monitored item on the session array is refused
    const sub = await looker.session.createSubscription2({
      requestedPublishingInterval: 1000,
      publishingEnabled: true,
    });
    const session = looker.session as unknown as {
      createMonitoredItems(r: unknown): Promise<{ results?: { statusCode: { name: string } }[] }>;
    };
    const created = await session.createMonitoredItems({
      subscriptionId: sub.subscriptionId,
      timestampsToReturn: TimestampsToReturn.Both,
      itemsToCreate: [
        {
          itemToMonitor: { nodeId: sessionArray, attributeId: AttributeIds.Value },
          monitoringMode: 2,
          requestedParameters: { clientHandle: 1, samplingInterval: 0, queueSize: 10, discardOldest: true },
        },
      ],
    });
    expect(created.results!.map((r) => r.statusCode.name)).toEqual(["BadNodeIdUnknown"]);
    await sub.terminate();
  });
});
