/**
 * workerUrl: where the worker entry `src/<path>` (a `*.worker.ts` file) is, run from the source tree or from
 * the compiled binary. Inside the binary every bundled module's `import.meta.url` is the executable's own
 * (`file:///$bunfs/root/gatehouse`), and the build (scripts/build.ts) embeds each `*.worker.ts` as an
 * entrypoint of its own at its path below src/; from the source tree this file sits in src/lib/.
 */
export function workerUrl(path: string): string {
  const here = import.meta.url;
  return new URL(here.startsWith("file:///$bunfs/") ? `./${path}` : `../${path}`, here).href;
}
