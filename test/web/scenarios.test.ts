import { afterAll, describe, expect } from "bun:test";
import { cleanupTempDirs, testWeb } from "../helpers/app.ts";
import { runScenarios } from "../helpers/scenarios.ts";

afterAll(cleanupTempDirs);

const withIntegration = async (ctx: {
  core: Awaited<ReturnType<typeof testWeb>>["core"];
  vars: Record<string, unknown>;
}) => {
  const { integration } = await ctx.core.credentials.create({
    type: "mqtt",
    username: "line-7",
    password: "line-7-password",
  });
  ctx.vars.id = integration.id;
};

describe("integration routes", () => {
  runScenarios(testWeb, [
    {
      name: "API: create with a token fires integration.created and returns the password once",
      method: "POST",
      path: "/api/v1/integrations",
      auth: "token",
      json: { type: "opcua", username: "scada-9" },
      status: 201,
      contains: ['"username":"scada-9"', '"password":"'],
      notContains: ["passwordHash", "$argon2"],
      events: { "integration.created": 1 },
    },
    {
      name: "API: a duplicate username is 409 and changes nothing",
      method: "POST",
      path: "/api/v1/integrations",
      auth: "token",
      before: withIntegration,
      json: { type: "mqtt", username: "line-7" },
      status: 409,
      contains: ['"error":"conflict"'],
      events: { "integration.created": 0 },
    },
    {
      name: "API: deny filters are set and listed",
      method: "PATCH",
      path: (ctx) => `/api/v1/integrations/${ctx.vars.id}`,
      auth: "token",
      before: withIntegration,
      json: { denySubscribeAcl: ["secret/#"], denyPublishAcl: ["plant/+/cmd"] },
      status: 200,
      contains: ['"denySubscribeAcl":["secret/#"]', '"denyPublishAcl":["plant/+/cmd"]'],
      events: { "integration.updated": 1 },
    },
    {
      name: "API: an invalid filter is 400 with the field named",
      method: "PATCH",
      path: (ctx) => `/api/v1/integrations/${ctx.vars.id}`,
      auth: "token",
      before: withIntegration,
      json: { denySubscribeAcl: ["a/#/b"] },
      status: 400,
      contains: ["denySubscribeAcl"],
      events: { "integration.updated": 0 },
    },
    {
      name: "page: deactivate through the form fires integration.deactivated",
      method: "POST",
      path: (ctx) => `/integrations/${ctx.vars.id}/toggle`,
      before: withIntegration,
      form: {},
      status: 303,
      events: { "integration.deactivated": 1 },
      after: (ctx) => expect(ctx.core.credentials.get(ctx.vars.id as number)!.active).toBe(false),
    },
    {
      name: "page: a form without the CSRF token is refused before acting",
      method: "POST",
      path: (ctx) => `/integrations/${ctx.vars.id}/delete`,
      before: withIntegration,
      form: { _csrf: "forged" },
      status: 403,
      events: { "integration.deleted": 0 },
    },
    {
      name: "page without JS: the edit page has every field, deny filters included",
      method: "GET",
      path: (ctx) => `/integrations/${ctx.vars.id}/edit`,
      before: withIntegration,
      status: 200,
      contains: ['name="publishAcl"', 'name="subscribeAcl"', 'name="denyPublishAcl"', 'name="denySubscribeAcl"'],
    },
    {
      name: "page without JS: saving deny filters from the edit page",
      method: "POST",
      path: (ctx) => `/integrations/${ctx.vars.id}`,
      before: withIntegration,
      form: {
        username: "line-7",
        description: "",
        publishAcl: "#",
        subscribeAcl: "#",
        denyPublishAcl: "",
        denySubscribeAcl: "test/nosubscribe",
      },
      status: 303,
      events: { "integration.updated": 1 },
      after: (ctx) =>
        expect(ctx.core.credentials.get(ctx.vars.id as number)!.denySubscribeAcl).toEqual(["test/nosubscribe"]),
    },
    {
      name: "settings: default permissions per type apply to the next new integration",
      method: "POST",
      path: "/settings/defaults",
      form: {
        "mqtt.publishAcl": "plant/+/telemetry/#",
        "mqtt.subscribeAcl": "plant/+/cmd/#",
        "opcua.publishAcl": "#",
        "opcua.subscribeAcl": "#",
        "http.publishAcl": "#",
        "http.subscribeAcl": "#",
        "vrpc.publishAcl": "#",
        "vrpc.subscribeAcl": "#",
      },
      status: 303,
      after: async (ctx) => {
        const { integration } = await ctx.core.credentials.create({ type: "mqtt" });
        expect(integration).toMatchObject({ publishAcl: ["plant/+/telemetry/#"], subscribeAcl: ["plant/+/cmd/#"] });
        expect((await ctx.core.credentials.create({ type: "opcua" })).integration.publishAcl).toEqual(["#"]);
        const page = await (await ctx.request("GET", "/settings")).text();
        expect(page).toContain('value="plant/+/telemetry/#"');
      },
    },
    {
      name: "settings: an invalid default is refused with the field named",
      method: "POST",
      path: "/settings/defaults",
      form: { "mqtt.publishAcl": "a/#/b", "mqtt.subscribeAcl": "#" },
      status: 400,
      contains: ["valid MQTT topic filter"],
    },
    {
      name: "page: a row with # says it is unrestricted",
      method: "GET",
      path: "/integrations",
      before: withIntegration,
      status: 200,
      contains: ["badge unrestricted", "all topics"],
    },
    {
      name: "nobody: the API answers 401 and nothing is created",
      method: "POST",
      path: "/api/v1/integrations",
      auth: "none",
      json: { type: "mqtt" },
      status: 401,
      events: { "integration.created": 0 },
    },
    {
      name: "device credentials open no admin route",
      method: "GET",
      path: "/api/v1/integrations",
      auth: "none",
      headers: { authorization: `Basic ${btoa("line-7:line-7-password")}` },
      before: withIntegration,
      status: 401,
    },
  ]);
});
