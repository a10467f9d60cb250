import pkg from "../package.json";

/** version: the release, from package.json (embedded in the binary at build time). */
export const version: string = pkg.version;
