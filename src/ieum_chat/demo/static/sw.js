/* The demo page's service worker (scope /demo): shows the server's Web Push notifications
 * and brings the chat back when one is clicked.
 *
 * A push's payload is the JSON {"title","body","tag","data"} the server encrypts for this
 * browser (RFC 8291); tag is the couple's id, so a newer message replaces the older one
 * instead of stacking. Every push shows a notification (userVisibleOnly).
 */
"use strict";

const FALLBACK = { title: "이음", body: "새 메시지", tag: "ieum-chat", data: {} };

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

function payloadOf(event) {
  if (!event.data) return FALLBACK;
  try {
    const value = event.data.json();
    return value && typeof value === "object" ? value : FALLBACK;
  } catch (_) {
    return { ...FALLBACK, body: event.data.text() || FALLBACK.body };
  }
}

self.addEventListener("push", (event) => {
  const note = payloadOf(event);
  const tag = typeof note.tag === "string" && note.tag ? note.tag : FALLBACK.tag;
  event.waitUntil(
    self.registration.showNotification(String(note.title || FALLBACK.title), {
      body: String(note.body || ""),
      tag,
      renotify: true,
      data: note.data && typeof note.data === "object" ? note.data : {},
    }),
  );
});

// Focus a demo page that is open (any of them: the chat is the same), else open one. A page
// needs its token in the URL: the page's own notifications carry it in data.url, a server
// push does not, and opens the demo's start (which says how to get a URL).
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  event.waitUntil(
    (async () => {
      const pages = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const scope = new URL(self.registration.scope);
      const open = pages.find((client) => new URL(client.url).pathname.startsWith(scope.pathname));
      if (open) return open.focus();
      const url = typeof data.url === "string" && data.url.startsWith(scope.origin) ? data.url : scope.href;
      return self.clients.openWindow(url);
    })(),
  );
});
