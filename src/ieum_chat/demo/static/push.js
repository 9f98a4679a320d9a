/* The demo page's device and notifications: window.IeumPush, used by app.js.
 *
 * deviceId(): a stable id for this browser (localStorage), sent as x-device-id on STOMP
 * CONNECT and registered with PUT /chat/devices/{id}: while this page is connected the server
 * knows this device sees the chat, and pushes it nothing.
 *
 * setup(options): when the browser has service workers, PushManager and Notification, and
 * notifications are allowed (asked on the first tap or key press, never on load), registers
 * /demo/sw.js for /demo, subscribes with the server's VAPID key (GET /chat/push/vapid-key)
 * and registers the subscription (platform webpush, navigator.language) with PUT
 * /chat/devices/{id}. Every failure (no
 * key on the server, permission refused, no push service reachable) ends as a quiet word in
 * the header and body[data-push]; the chat never depends on it.
 *
 * notify(note): shows {title, body, tag, data} through the service worker registration (as a
 * push would be), else as a page Notification.
 */
(function () {
  "use strict";

  const STORAGE_KEY = "ieum-chat.device-id";
  const SUBSCRIBE_TIMEOUT_MS = 20000; // a push service that never answers is a failure too

  let memoryId = null; // when localStorage is unavailable (a private window, a policy)
  let registration = null;

  function newId() {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    return `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  }

  function deviceId() {
    try {
      let id = localStorage.getItem(STORAGE_KEY);
      if (!id) {
        id = newId();
        localStorage.setItem(STORAGE_KEY, id);
      }
      return id;
    } catch (_) {
      memoryId = memoryId || newId();
      return memoryId;
    }
  }

  function supported() {
    return (
      "serviceWorker" in navigator &&
      typeof PushManager === "function" &&
      typeof Notification === "function" &&
      window.isSecureContext
    );
  }

  // PushManager.subscribe wants the key as bytes.
  function keyBytes(base64url) {
    const b64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  function withTimeout(promise, ms, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms / 1000} s`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  async function permission() {
    if (Notification.permission !== "default") return Notification.permission;
    // Ask on a gesture: browsers ignore or hide requests made on load.
    await new Promise((resolve) => {
      const once = () => {
        document.removeEventListener("pointerdown", once, true);
        document.removeEventListener("keydown", once, true);
        resolve();
      };
      document.addEventListener("pointerdown", once, true);
      document.addEventListener("keydown", once, true);
    });
    return Notification.requestPermission();
  }

  // options: {fetchKey() (the key, or null when the server has none), register(deviceId,
  // body), report(state, detail)}
  async function setup(options) {
    const { fetchKey, register, report } = options;
    if (!supported()) return report("unsupported");
    try {
      registration = await navigator.serviceWorker.register("/demo/sw.js", { scope: "/demo" });
    } catch (err) {
      return report("no-worker", err.message);
    }
    const allowed = await permission();
    if (allowed !== "granted") return report("denied");
    let key;
    try {
      key = await fetchKey();
    } catch (err) {
      return report("key-failed", err.message);
    }
    if (!key) return report("no-key");
    await navigator.serviceWorker.ready;
    let subscription;
    try {
      subscription = await registration.pushManager.getSubscription();
      const current = subscription && subscription.options.applicationServerKey;
      if (subscription && current && !sameKey(new Uint8Array(current), keyBytes(key))) {
        await subscription.unsubscribe(); // the server's key changed
        subscription = null;
      }
      if (!subscription) {
        subscription = await withTimeout(
          registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) }),
          SUBSCRIBE_TIMEOUT_MS,
          "subscribe",
        );
      }
    } catch (err) {
      return report("subscribe-failed", `${err.name || "Error"}: ${err.message}`);
    }
    try {
      await register(deviceId(), {
        platform: "webpush",
        subscription: subscription.toJSON(),
        locale: navigator.language || null,
      });
    } catch (err) {
      return report("register-failed", err.message);
    }
    return report("registered");
  }

  function sameKey(a, b) {
    return a.length === b.length && a.every((byte, i) => byte === b[i]);
  }

  async function notify(note) {
    const options = { body: note.body, tag: note.tag, data: note.data, renotify: Boolean(note.tag) };
    if (typeof Notification !== "function" || Notification.permission !== "granted") return false;
    const worker = registration || (await navigator.serviceWorker?.getRegistration("/demo"));
    if (worker && worker.active) {
      await worker.showNotification(note.title, options);
      return true;
    }
    new Notification(note.title, options); // eslint-disable-line no-new
    return true;
  }

  window.IeumPush = { deviceId, setup, notify, supported };
})();
