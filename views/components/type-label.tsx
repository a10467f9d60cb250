import { integrationTypeInfo, type IntegrationType } from "../../src/core/types.ts";

/** typeLabels: each type's label for people, from the core's one definition of the types. */
export const typeLabels = Object.fromEntries(
  Object.entries(integrationTypeInfo).map(([t, info]) => [t, info.label]),
) as Record<IntegrationType, string>;
