import { Elysia } from "elysia";
// Imported as files so `bun build --compile` embeds them; the binary never reads the source tree.
import htmxPath from "htmx.org/dist/htmx.min.js" with { type: "file" };
import cssPath from "../../views/assets/app.css" with { type: "file" };
import jsPath from "../../views/assets/app.js" with { type: "file" };

const assets: Record<string, { path: string; type: string }> = {
  "htmx.min.js": { path: htmxPath, type: "text/javascript; charset=utf-8" },
  "app.js": { path: jsPath, type: "text/javascript; charset=utf-8" },
  "app.css": { path: cssPath, type: "text/css; charset=utf-8" },
};

/** assetRoutes: htmx, css and page script from inside the binary; never a CDN. */
export function assetRoutes() {
  return new Elysia({ name: "assets" }).get("/assets/:name", async ({ params }) => {
    const asset = Object.hasOwn(assets, params.name) ? assets[params.name] : undefined; // not `__proto__`, `constructor`, ...
    if (!asset) return new Response("not found", { status: 404 });
    return new Response(await Bun.file(asset.path).arrayBuffer(), {
      headers: { "content-type": asset.type, "cache-control": "public, max-age=3600" },
    });
  });
}
