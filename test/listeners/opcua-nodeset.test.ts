import { afterAll, describe, expect, it } from "bun:test";
import { gunzipSync } from "node:zlib";
import { BrowseDirection, constructEventFilter, TimestampsToReturn } from "node-opcua-client";
import { imageNodes, trimNodeset } from "../../scripts/trim-nodeset.ts";
import type { App } from "../../src/app.ts";
import { cleanupTempDirs, testApp } from "../helpers/app.ts";
import { AttributeIds, connectOpcua, type OpcuaConnection } from "../helpers/opcua.ts";

const full = new URL("../../node_modules/node-opcua-nodesets/nodesets/Opc.Ua.NodeSet2.ndjson.gz", import.meta.url);
const trimmed = new URL("../../src/listeners/opcua/Opc.Ua.Gatehouse.ndjson.gz", import.meta.url);
const lines = (gz: Uint8Array) => gunzipSync(gz).toString("utf8").split("\n").filter(Boolean);

const apps: App[] = [];
afterAll(async () => {
  for (const app of apps) await app.stop();
  cleanupTempDirs();
});

async function scada(args: string[] = []): Promise<OpcuaConnection> {
  const { app } = await testApp(["--mqtt-port", "off", ...args]);
  apps.push(app);
  const { password } = await app.core.credentials.create({ type: "opcua", username: "nodeset-reader" });
  return connectOpcua(app.address("opcua")!.port, { userName: "nodeset-reader", password });
}

/** the Server object's subtree (i=2253 down its hierarchical forward references) of an image */
function serverSubtree(nodes: ReturnType<typeof imageNodes>): Set<number> {
  const seen = new Set<number>();
  const todo = [2253];
  while (todo.length) {
    const id = todo.pop()!;
    if (seen.has(id) || !nodes.has(id)) continue;
    seen.add(id);
    for (const [fwd, type, to] of nodes.get(id)!.references) if (fwd && [46, 47, 49].includes(type)) todo.push(to);
  }
  return seen;
}

describe("the trimmed standard nodeset", () => {
  it("is exactly what scripts/trim-nodeset.ts makes of node-opcua's image (run it after a node-opcua upgrade)", async () => {
    const made = trimNodeset(new Uint8Array(await Bun.file(full).arrayBuffer()));
    expect(lines(made)).toEqual(lines(new Uint8Array(await Bun.file(trimmed).arrayBuffer())));
  });

  it("keeps the whole Server object of the standard, with no reference to a node it left out", async () => {
    const whole = imageNodes(new Uint8Array(await Bun.file(full).arrayBuffer()));
    const cut = imageNodes(new Uint8Array(await Bun.file(trimmed).arrayBuffer()));
    expect(cut.size).toBeLessThan(whole.size / 3);
    expect([...serverSubtree(whole)].filter((id) => !cut.has(id))).toEqual([]);
    const dangling = [...cut.values()].flatMap((n) =>
      n.references.filter(([, type, to]) => !cut.has(to) || !cut.has(type)).map(() => n.nodeId),
    );
    expect(dangling).toEqual([]);
  });

  it("serves a client the mandatory Server nodes and the type system it reads; PubSub types only with --opcua-full-nodeset", async () => {
    const c = await scada();
    const read = (nodeId: string, attributeId = AttributeIds.Value) => c.session.read({ nodeId, attributeId });
    for (const nodeId of [
      "i=2255", // NamespaceArray
      "i=2256", // ServerStatus
      "i=2269", // ServerCapabilities/ServerProfileArray
      "i=2271", // ServerCapabilities/LocaleIdArray
      "i=2272", // ServerCapabilities/MinSupportedSampleRate
      "i=2735", // ServerCapabilities/MaxBrowseContinuationPoints
      "i=11705", // OperationLimits/MaxNodesPerRead
      "i=2275", // ServerDiagnostics/ServerDiagnosticsSummary
    ]) {
      expect([nodeId, (await read(nodeId)).statusCode.name]).toEqual([nodeId, "Good"]);
    }
    expect((await read("i=2272")).value.value).toBe(0); // exception-based monitored items are served
    // the data types a client walks to learn what a Topics variable holds
    for (const nodeId of ["i=1", "i=11", "i=12", "i=26", "i=24"])
      expect((await read(nodeId, AttributeIds.BrowseName)).statusCode.name).toBe("Good");
    const server = await c.session.browse({
      nodeId: "i=2253",
      browseDirection: BrowseDirection.Forward,
      resultMask: 63,
    });
    expect(server.references!.map((r) => r.browseName.name)).toEqual(
      expect.arrayContaining([
        "ServerCapabilities",
        "ServerDiagnostics",
        "ServerStatus",
        "NamespaceArray",
        "GetMonitoredItems",
      ]),
    );
    expect((await read("i=14209", AttributeIds.BrowseName)).statusCode.name).toBe("BadNodeIdUnknown"); // PubSubConnectionType
    await c.close();

    const whole = await scada(["--opcua-full-nodeset", "true"]);
    expect(
      (await whole.session.read({ nodeId: "i=14209", attributeId: AttributeIds.BrowseName })).value.value.name,
    ).toBe("PubSubConnectionType");
    await whole.close();
  }, 60_000);

  it("has no node a client can trip over: a crawl from Root reads every node; event subscriptions, condition fields included, are created", async () => {
    const c = await scada();
    const seen = new Set<string>();
    const todo = ["i=84"];
    const statuses = new Set<string>();
    while (todo.length) {
      const batch = [...new Set(todo.splice(0, 50))].filter((n) => !seen.has(n));
      for (const n of batch) seen.add(n);
      if (!batch.length) continue;
      const browsed = await c.session.browse(
        batch.map((nodeId) => ({
          nodeId,
          browseDirection: BrowseDirection.Forward,
          referenceTypeId: "i=33",
          includeSubtypes: true,
          resultMask: 63,
        })),
      );
      for (const r of browsed) {
        expect(r.statusCode.name).toBe("Good");
        for (const ref of r.references ?? []) todo.push(ref.nodeId.toString());
      }
      const attributes = [
        AttributeIds.NodeClass,
        AttributeIds.BrowseName,
        AttributeIds.DisplayName,
        AttributeIds.Value,
        AttributeIds.DataType,
      ];
      for (const v of await c.session.read(
        batch.flatMap((nodeId) => attributes.map((attributeId) => ({ nodeId, attributeId }))),
      ))
        statuses.add(v.statusCode.name);
    }
    expect(seen.size).toBeGreaterThan(1000);
    // security-sensitive values over None, values not produced yet, attributes a node class lacks: fine
    expect(
      [...statuses].filter(
        (s) =>
          !["Good", "BadAttributeIdInvalid", "BadSecurityModeInsufficient", "BadWaitingForInitialData"].includes(s),
      ),
    ).toEqual([]);

    const sub = await c.session.createSubscription2({ requestedPublishingInterval: 100, publishingEnabled: true });
    const base = constructEventFilter(["EventId", "EventType", "SourceName", "Time", "Message", "Severity"]);
    const conditions = constructEventFilter(["EventId", "ConditionName", "EnabledState/Id"]);
    for (const filter of [base, conditions]) {
      const item = await sub.monitor(
        { nodeId: "i=2253", attributeId: AttributeIds.EventNotifier },
        { samplingInterval: 0, queueSize: 10, filter },
        TimestampsToReturn.Both,
      );
      expect(item.statusCode.name).toBe("Good");
    }
    await sub.terminate();
    await c.close();
  }, 60_000);
});
