import { join } from "node:path";
import { OPCUACertificateManager } from "node-opcua-certificate-manager";
import {
  AttributeIds,
  type ClientSession,
  DataType,
  MessageSecurityMode,
  OPCUAClient,
  SecurityPolicy,
  UserTokenType,
  type UserIdentityInfo,
} from "node-opcua-client";
import { tempDir } from "./app.ts";

export { AttributeIds, DataType, MessageSecurityMode, SecurityPolicy };

export interface OpcuaConnection {
  client: OPCUAClient;
  session: ClientSession;
  close(): Promise<void>;
}

/**
 * connectOpcua: a real node-opcua client. Its PKI lives in a throw-away folder (never ~/.config);
 * it trusts the server's certificate, as an operator would after checking it.
 */
export async function connectOpcua(
  port: number,
  user: { userName: string; password: string } | "anonymous",
  security: { mode?: MessageSecurityMode; policy?: SecurityPolicy; pkiDir?: string } = {},
): Promise<OpcuaConnection> {
  const pkiDir = security.pkiDir ?? tempDir("gatehouse-opcua-client-");
  const clientCertificateManager = new OPCUACertificateManager({
    rootFolder: join(pkiDir, "pki"),
    automaticallyAcceptUnknownCertificate: true,
  });
  const client = OPCUAClient.create({
    applicationName: "GatehouseTestClient",
    applicationUri: `urn:gatehouse-test:${pkiDir.split("/").pop()}`,
    endpointMustExist: false,
    securityMode: security.mode ?? MessageSecurityMode.None,
    securityPolicy: security.policy ?? SecurityPolicy.None,
    connectionStrategy: { maxRetry: 0, initialDelay: 100 },
    clientCertificateManager,
  });
  await client.connect(`opc.tcp://127.0.0.1:${port}`);
  try {
    const identity: UserIdentityInfo =
      user === "anonymous" ? { type: UserTokenType.Anonymous } : { type: UserTokenType.UserName, ...user };
    const session = await client.createSession(identity);
    return {
      client,
      session,
      async close() {
        await session.close().catch(() => undefined);
        await client.disconnect();
      },
    };
  } catch (err) {
    await client.disconnect();
    throw err;
  }
}

export async function readValue(session: ClientSession, nodeId: string) {
  return session.read({ nodeId, attributeId: AttributeIds.Value });
}
