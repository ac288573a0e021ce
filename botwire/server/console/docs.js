// The OpenAPI docs at /docs: Swagger UI from the server's own files (no CDN, no inline script).
"use strict";
window.ui = window.SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
