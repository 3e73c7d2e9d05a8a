// The apps' service worker: the app shell is cached so a handheld opens without network
// (it then shows itself offline). Taps are never cached or queued here.
const SHELL = "citycard-apps-v1";
const FILES = ["/apps/taxi", "/static/apps/taxi.js", "/apps/kiosk", "/static/apps/kiosk.js",
  "/apps/inspector", "/static/apps/inspector.js",
  "/static/apps/terminal.js", "/static/apps/common.js", "/static/apps/apps.css", "/static/apps/taxi.webmanifest",
  "/static/apps/kiosk.webmanifest", "/static/apps/icon.svg"];

self.addEventListener("install", (e) => e.waitUntil(caches.open(SHELL).then((c) => c.addAll(FILES))));
self.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.pathname.startsWith("/api/")) return;
  e.respondWith(fetch(e.request).catch(() => caches.match(e.request)));
});
