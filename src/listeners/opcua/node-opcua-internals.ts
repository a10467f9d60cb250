import type { ISessionContext, UAVariable } from "node-opcua-address-space";
import type { PermissionType } from "node-opcua-types";

/**
 * The one reach into node-opcua's internals (pinned: node-opcua-address-space 2.186.4). A variable's
 * Read and Write permission checks go through `checkPermissionPrivate`; replacing it per variable
 * makes the core's topic permissions OPC UA permissions, so a refusal is BadUserAccessDenied
 * (Part 4 §7.34) on Read, Write, monitored items and Browse alike.
 */
const pinned = "node-opcua-address-space 2.186.4";

type PermissionCheck = (context: ISessionContext | null, permission: PermissionType) => boolean;

/** overridePermissionCheck: `decide` answers, or returns undefined to leave the library's check in place. */
export function overridePermissionCheck(variable: UAVariable, decide: (context: ISessionContext | null, permission: PermissionType) => boolean | undefined): void {
  const v = variable as unknown as { checkPermissionPrivate?: PermissionCheck };
  if (typeof v.checkPermissionPrivate !== "function") {
    throw new Error(`node-opcua internals changed: UAVariable.checkPermissionPrivate is missing; written against ${pinned} (see src/listeners/opcua/node-opcua-internals.ts)`);
  }
  const original = v.checkPermissionPrivate.bind(variable);
  v.checkPermissionPrivate = (context, permission) => decide(context, permission) ?? original(context, permission);
}
