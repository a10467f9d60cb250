import type { ConnectHelp, HelpContext } from "../../lib/pages.ts";
import { jsString } from "../../lib/quote.ts";

/**
 * opcuaHelp: an OPC UA integration's username is the UserName identity token of a session; the
 * endpoint URL for UaExpert (or any client) and a node-opcua-client snippet.
 */
export function opcuaHelp(ctx: HelpContext, port: number | undefined): ConnectHelp {
  const endpoint = `opc.tcp://${ctx.host}:${port ?? 4840}`;
  return {
    username:
      "The user name of the session's UserName identity token (UaExpert: Add Server, Authentication Settings, " +
      "Username and Password). Anonymous and certificate users are refused. With security None the password " +
      "still travels encrypted; Sign or SignAndEncrypt need the client's certificate trusted under OPC UA certificates.",
    urls: port ? [{ label: "Endpoint URL", url: endpoint }] : [],
    retry:
      "OPC UA: UaExpert and most clients do not retry a refused session by themselves: connect again after approving.",
    examples: [
      {
        label: "UaExpert",
        text: `Custom Discovery: ${endpoint}\nSecurity: None (or Basic256Sha256, Sign & Encrypt)\nUsername: ${ctx.username}\nPassword: PASSWORD`,
      },
      {
        label: "node-opcua-client",
        text: [
          'import { OPCUAClient, UserTokenType } from "node-opcua-client";',
          "const client = OPCUAClient.create({ endpointMustExist: false });",
          `await client.connect(${jsString(endpoint)});`,
          "const session = await client.createSession({",
          `  type: UserTokenType.UserName, userName: ${jsString(ctx.username)}, password: "PASSWORD",`,
          "});",
        ].join("\n"),
      },
    ],
  };
}
