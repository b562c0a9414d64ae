/**
 * Swagger UI from npm's swagger-ui-dist, imported as text so that it travels inside the
 * bundle and the compiled binary: no CDN, works offline. The page loads nothing but these
 * files and the service's own /openapi.json, under a strict Content-Security-Policy.
 */
import css from "swagger-ui-dist/swagger-ui.css" with { type: "text" };
import bundle from "swagger-ui-dist/swagger-ui-bundle.js" with { type: "text" };
import preset from "swagger-ui-dist/swagger-ui-standalone-preset.js" with { type: "text" };

/** Files under `<context>/swagger-ui/`. */
const FILES: Record<string, { body: string; type: string }> = {
  "swagger-ui.css": { body: css, type: "text/css; charset=utf-8" },
  "swagger-ui-bundle.js": { body: bundle, type: "text/javascript; charset=utf-8" },
  "swagger-ui-standalone-preset.js": { body: preset, type: "text/javascript; charset=utf-8" },
  "initializer.js": {
    body: `window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: new URL("openapi.json", document.baseURI).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout",
  });
});
`,
    type: "text/javascript; charset=utf-8",
  },
};

export const SECURITY_HEADERS = {
  "content-security-policy": "default-src 'self'; img-src 'self' data:; " +
    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

/** The UI's page; `base` is the context with a trailing slash. */
export function swaggerPage(base: string): Response {
  const escaped = base.replace(/[&"<>]/g, (c) => `&#${c.charCodeAt(0)};`);
  return new Response(
    `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Tickets API</title>
  <base href="${escaped}">
  <link rel="stylesheet" href="swagger-ui/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="swagger-ui/swagger-ui-bundle.js"></script>
  <script src="swagger-ui/swagger-ui-standalone-preset.js"></script>
  <script src="swagger-ui/initializer.js"></script>
</body>
</html>
`,
    { headers: { "content-type": "text/html; charset=utf-8", ...SECURITY_HEADERS } },
  );
}

/** One of the UI's files, or undefined. */
export function swaggerFile(name: string): Response | undefined {
  const file = Object.hasOwn(FILES, name) ? FILES[name] : undefined;
  if (!file) return undefined;
  return new Response(file.body, {
    headers: {
      "content-type": file.type,
      "cache-control": "public, max-age=86400",
      ...SECURITY_HEADERS,
    },
  });
}

export const SWAGGER_FILES = Object.keys(FILES);
