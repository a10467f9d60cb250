import { Elysia } from "elysia";
// Imported as files so `bun build --compile` embeds them; the binary never reads the source tree.
import htmxPath from "htmx.org/dist/htmx.min.js" with { type: "file" };
import cssPath from "../../views/assets/app.css" with { type: "file" };
import jsPath from "../../views/assets/app.js" with { type: "file" };
import iconPath from "../../views/assets/favicon.svg" with { type: "file" };

const assets: Record<string, { path: string; type: string }> = {
  "htmx.min.js": { path: htmxPath, type: "text/javascript; charset=utf-8" },
  "app.js": { path: jsPath, type: "text/javascript; charset=utf-8" },
  "app.css": { path: cssPath, type: "text/css; charset=utf-8" },
  "favicon.svg": { path: iconPath, type: "image/svg+xml" },
};

async function serve(asset: { path: string; type: string }): Promise<Response> {
  return new Response(await Bun.file(asset.path).arrayBuffer(), {
    headers: { "content-type": asset.type, "cache-control": "public, max-age=3600" },
  });
}

/**
 * assetRoutes: htmx, css, page script and icon from inside the binary; never a CDN. Browsers ask for
 * `/favicon.ico` whatever the page names: it is the SVG icon (every current browser shows an SVG icon).
 */
export function assetRoutes() {
  return new Elysia({ name: "assets" })
    .get("/assets/:name", ({ params }) => {
      const asset = Object.hasOwn(assets, params.name) ? assets[params.name] : undefined; // not `__proto__`, `constructor`, ...
      if (!asset) return new Response("not found", { status: 404 });
      return serve(asset);
    })
    .get("/favicon.ico", () => serve(assets["favicon.svg"]!));
}
