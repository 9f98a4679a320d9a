/* The ieum-chat demo page: one member of a couple, in a browser.
 *
 * Open it as /demo?token=JWT (the URL `ieum-chat demo` prints). Optional parameters:
 *   transport=xhr-streaming  SockJS with only that transport (any SockJS transport name)
 *   lang=ko|en               the interface language (default: the browser's)
 *
 * REST (Authorization: Bearer) gives the room, the history (newest first, scrolled back by
 * the seq cursor), read marks and presigned uploads; STOMP (@stomp/stompjs) over a raw
 * WebSocket at /ws/chat, or over sockjs-client when WebSocket is unavailable or blocked,
 * carries live messages, read receipts, typing and presence.
 *
 * Nothing is lost across a reconnect: the page keeps the last seq it has seen and SUBSCRIBEs
 * with x-resume-after-seq (the server replays what was missed, then goes live), and re-sends
 * every message without a RECEIPT under the same tempId (the server stores it once).
 * State on the DOM, for people and tests alike: body[data-conn], li.msg[data-seq,data-state,
 * data-temp-id], .unread (the "1" of a message the partner has not read), #presence[data-online],
 * #typing[hidden], #transport[data-transport].
 */
(function () {
  "use strict";

  const TEXTS = {
    ko: {
      connecting: "연결하는 중…",
      reconnecting: "연결이 끊겼어요. 다시 연결하는 중…",
      online: "온라인",
      offline: "오프라인",
      typing: (name) => `${name}님이 입력 중…`,
      placeholder: "메시지를 입력하세요",
      send: "전송",
      attach: "사진 보내기",
      sending: "전송 중",
      failed: "전송 실패",
      retry: "다시 보내기",
      older: "이전 메시지 보기",
      loadingOlder: "불러오는 중…",
      noTokenTitle: "토큰이 없어요",
      noToken: "`ieum-chat demo`가 출력한 주소(…/demo?token=…)로 열어 주세요.",
      authTitle: "인증에 실패했어요",
      auth: "토큰이 잘못되었거나 만료되었어요. `ieum-chat demo`를 다시 실행하고 새 주소로 열어 주세요.",
      noRoomTitle: "채팅방이 없어요",
      noRoom: "이 사용자는 아직 커플로 연결되지 않았어요.",
      libsTitle: "브라우저 라이브러리가 없어요",
      libs: "`make demo`(web/에서 npm ci)로 설치한 뒤 새로고침해 주세요.",
      rateLimited: "메시지를 너무 빠르게 보내고 있어요. 잠시 후 다시 시도해 주세요.",
      error: "오류가 발생했어요",
      imageBroken: "사진을 표시할 수 없어요",
    },
    en: {
      connecting: "Connecting…",
      reconnecting: "Connection lost. Reconnecting…",
      online: "online",
      offline: "offline",
      typing: (name) => `${name} is typing…`,
      placeholder: "Type a message",
      send: "Send",
      attach: "Send a photo",
      sending: "Sending",
      failed: "Not sent",
      retry: "Retry",
      older: "Earlier messages",
      loadingOlder: "Loading…",
      noTokenTitle: "No token",
      noToken: "Open the URL printed by `ieum-chat demo` (…/demo?token=…).",
      authTitle: "Authentication failed",
      auth: "The token is invalid or expired. Run `ieum-chat demo` again and open a new URL.",
      noRoomTitle: "No chat room",
      noRoom: "This user is not in a couple yet.",
      libsTitle: "Browser libraries missing",
      libs: "Install them with `make demo` (npm ci in web/), then reload.",
      rateLimited: "You are sending too fast. Try again in a moment.",
      error: "Something went wrong",
      imageBroken: "Cannot show this picture",
    },
  };

  const PAGE_SIZE = 30;
  const RECEIPT_TIMEOUT_MS = 15000;
  const TYPING_REFRESH_MS = 2500; // re-announce while typing (the server drops repeats within 1 s)
  const TYPING_IDLE_MS = 3000; // no keystroke for this long: stopped typing
  const PARTNER_TYPING_TTL_MS = 6000; // a lost "typing: false" hides the indicator anyway
  const FATAL_CODES = new Set(["AUTH_FAILED", "TOKEN_EXPIRED"]);

  const params = new URLSearchParams(location.search);
  const token = params.get("token") || "";
  const forcedTransport = params.get("transport") || null;
  const wanted = (params.get("lang") || navigator.language || "ko").toLowerCase();
  const lang = wanted.startsWith("ko") ? "ko" : "en";
  const T = TEXTS[lang];

  const $ = (id) => document.getElementById(id);
  const ui = {
    body: document.body,
    avatar: $("avatar"),
    partnerName: $("partner-name"),
    presence: $("presence"),
    presenceText: $("presence-text"),
    transport: $("transport"),
    banner: $("banner"),
    bannerText: $("banner-text"),
    scroller: $("scroller"),
    older: $("older"),
    list: $("messages"),
    typing: $("typing"),
    typingText: $("typing-text"),
    toast: $("toast"),
    composer: $("composer"),
    attach: $("attach"),
    file: $("file"),
    input: $("input"),
    send: $("send"),
  };

  const state = {
    me: null, // my user id (the token's sub)
    roomId: null,
    partner: { id: null, name: "", profileImage: null, online: false },
    lastSeq: 0, // the highest seq seen: SUBSCRIBE resumes after it
    oldestSeq: null, // the history cursor
    hasMore: false,
    loadingOlder: false,
    bySeq: new Map(), // seq -> {el, m}
    outbox: new Map(), // tempId -> {body, el, status, acked, attempt, timer, file}
    client: null,
    connected: false,
    everConnected: false,
    attemptConnected: false,
    attemptMode: null,
    mode: "ws", // "ws" (raw STOMP WebSocket) or "sockjs"
    worked: { ws: false, sockjs: false },
    fatal: false,
    readSent: 0, // highest upToSeq sent on this connection
    readTimer: null,
    typingSent: false,
    typingAt: 0,
    typingIdle: null,
    partnerTypingTimer: null,
    toastTimer: null,
    stuck: true, // the reader is at the bottom: new content keeps them there
    autoTop: -1, // where scrollToBottom() last put the list
  };

  // -- helpers -------------------------------------------------------------------------------

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function tokenSubject(jwt) {
    try {
      const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
      return JSON.parse(new TextDecoder().decode(bytes)).sub || null;
    } catch (_) {
      return null;
    }
  }

  function newTempId() {
    const random = crypto.getRandomValues(new Uint32Array(2));
    return `web-${Date.now().toString(36)}-${random[0].toString(36)}${random[1].toString(36)}`;
  }

  function clock(createdAt) {
    if (typeof createdAt === "string" && createdAt.length >= 16) return createdAt.slice(11, 16);
    const now = new Date();
    return `${String(now.getHours()).padStart(2, "0")}:${String(now.getMinutes()).padStart(2, "0")}`;
  }

  function safeImageUrl(url) {
    return typeof url === "string" && /^(https?:|blob:)/i.test(url) ? url : null;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  // The server's error JSON says what went wrong in Korean (message) and English (detail).
  class HttpError extends Error {
    constructor(status, body) {
      const said = body && (lang === "ko" ? body.message || body.detail : body.detail || body.message);
      super(said || `HTTP ${status}`);
      this.status = status;
      this.code = body && body.code;
    }
  }

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!res.ok) throw new HttpError(res.status, data);
    return data;
  }

  // -- chrome: banner, presence, typing, toast, fatal ----------------------------------------

  function setConn(value) {
    ui.body.dataset.conn = value;
  }

  function showBanner(text, fatal) {
    ui.bannerText.textContent = text;
    ui.banner.classList.toggle("fatal-banner", Boolean(fatal));
    ui.banner.hidden = false;
  }

  function hideBanner() {
    ui.banner.hidden = true;
  }

  function showFatal(title, text) {
    state.fatal = true;
    setConn("failed");
    $("fatal-title").textContent = title;
    $("fatal-text").textContent = text;
    $("fatal").hidden = false;
    showBanner(title, true);
    if (state.client) state.client.deactivate();
  }

  function toast(text) {
    ui.toast.textContent = text;
    ui.toast.hidden = false;
    clearTimeout(state.toastTimer);
    state.toastTimer = setTimeout(() => (ui.toast.hidden = true), 4000);
  }

  function renderPartner() {
    const p = state.partner;
    ui.partnerName.textContent = p.name || "…";
    document.title = `${p.name} · ieum chat`;
    const image = safeImageUrl(p.profileImage);
    if (image) {
      ui.avatar.style.backgroundImage = `url("${image.replace(/"/g, "%22")}")`;
      ui.avatar.textContent = "";
    } else {
      ui.avatar.textContent = (p.name || "?").trim().charAt(0).toUpperCase();
    }
    setOnline(p.online);
  }

  function setOnline(online) {
    state.partner.online = Boolean(online);
    ui.presence.dataset.online = String(state.partner.online);
    ui.presenceText.textContent = state.partner.online ? T.online : T.offline;
    if (!online) setPartnerTyping(false);
  }

  // While we are disconnected we cannot know: neither green nor "offline".
  function setPresenceUnknown() {
    ui.presence.dataset.online = "unknown";
    ui.presenceText.textContent = "";
    setPartnerTyping(false);
  }

  function setPartnerTyping(typing) {
    clearTimeout(state.partnerTypingTimer);
    ui.typing.hidden = !typing;
    if (typing) {
      ui.typingText.textContent = T.typing(state.partner.name);
      state.partnerTypingTimer = setTimeout(() => setPartnerTyping(false), PARTNER_TYPING_TTL_MS);
    }
  }

  function setTransport(name) {
    ui.transport.dataset.transport = name || "";
    ui.transport.textContent = name || "";
  }

  // -- the message list ------------------------------------------------------------------------

  function nearBottom() {
    const s = ui.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  function scrollToBottom() {
    ui.scroller.scrollTop = ui.scroller.scrollHeight;
    state.autoTop = ui.scroller.scrollTop;
  }

  function isMine(m) {
    return m.senderId === state.me;
  }

  function renderBubble(m, localImage) {
    const li = el("li", `msg ${isMine(m) ? "mine" : "theirs"}`);
    li.dataset.type = m.type || "TEXT";
    if (m.senderId) li.dataset.sender = m.senderId;
    if (m.tempId) li.dataset.tempId = m.tempId;
    if (!isMine(m)) li.append(el("div", "sender", m.senderName || state.partner.name));
    const row = el("div", "row");
    const bubble = el("div", "bubble");
    const image = localImage || safeImageUrl(m.imageUrl);
    if (m.type === "IMAGE") {
      bubble.classList.add("image");
      const img = el("img");
      img.alt = m.content || "image";
      img.decoding = "async";
      if (image) img.src = image;
      img.addEventListener("error", () => {
        img.hidden = true;
        if (!bubble.querySelector(".broken")) bubble.prepend(el("div", "caption broken", T.imageBroken));
      });
      bubble.append(img);
      if (m.content) bubble.append(el("div", "caption", m.content));
    } else if (m.type === "STICKER") {
      bubble.textContent = `[${m.content}]`;
    } else {
      bubble.textContent = m.content || "";
    }
    const meta = el("div", "meta");
    const unread = el("span", "unread", "1");
    unread.hidden = true;
    const status = el("span", "state");
    const time = el("time", null, clock(m.createdAt));
    meta.append(unread, status, time);
    row.append(bubble, meta);
    li.append(row);
    return li;
  }

  function parts(li) {
    return {
      unread: li.querySelector(".unread"),
      status: li.querySelector(".state"),
      img: li.querySelector("img"),
      time: li.querySelector("time"),
    };
  }

  // "sending" | "sent" | "failed"; a failed message gets a retry button.
  function setStatus(li, status) {
    li.dataset.state = status;
    const { status: node } = parts(li);
    node.textContent = "";
    if (status === "sending") node.textContent = T.sending;
    if (status === "failed") {
      node.append(el("span", null, `${T.failed} `));
      const retry = el("button", "retry", T.retry);
      retry.type = "button";
      retry.addEventListener("click", () => retryMessage(li.dataset.tempId));
      node.append(retry);
    }
  }

  function setUnreadMark(entry) {
    // KakaoTalk's "1": my message the partner has not read yet.
    parts(entry.el).unread.hidden = !(isMine(entry.m) && !entry.m.isRead);
  }

  function regroup(li) {
    for (const node of [li, li.nextElementSibling]) {
      if (!node) continue;
      const prev = node.previousElementSibling;
      const same =
        prev && prev.dataset.sender && prev.dataset.sender === node.dataset.sender;
      node.classList.toggle("grouped", Boolean(same));
    }
  }

  // Messages with a seq are kept in seq order; the ones still being sent stay below them.
  function insertBySeq(li, seq) {
    let before = null;
    for (let node = ui.list.lastElementChild; node; node = node.previousElementSibling) {
      const nodeSeq = node.dataset.seq ? Number(node.dataset.seq) : Infinity;
      if (nodeSeq < seq) break;
      before = node;
    }
    ui.list.insertBefore(li, before);
    regroup(li);
  }

  // A stored message (history, live, replay or the echo of my own send): shown once, by seq.
  function addMessage(m) {
    if (typeof m.seq !== "number") return;
    if (m.seq > state.lastSeq) state.lastSeq = m.seq;
    if (state.oldestSeq === null || m.seq < state.oldestSeq) state.oldestSeq = m.seq;
    const known = state.bySeq.get(m.seq);
    if (known) {
      if (m.isRead && !known.m.isRead) {
        known.m.isRead = true;
        setUnreadMark(known);
      }
      return;
    }
    let li;
    const pending = isMine(m) && m.tempId ? state.outbox.get(m.tempId) : null;
    if (pending) {
      // My own message, back from the server: the pending bubble becomes the stored one.
      state.outbox.delete(m.tempId);
      clearTimeout(pending.timer);
      li = pending.el;
      li.remove();
      const { img, time } = parts(li);
      const url = safeImageUrl(m.imageUrl);
      if (img && url && img.src !== url) img.src = url;
      time.textContent = clock(m.createdAt);
    } else {
      li = renderBubble(m);
    }
    li.dataset.seq = String(m.seq);
    if (m.id) li.dataset.id = m.id;
    setStatus(li, "sent");
    const entry = { el: li, m };
    state.bySeq.set(m.seq, entry);
    setUnreadMark(entry);
    insertBySeq(li, m.seq);
    if (state.stuck || pending) scrollToBottom();
    if (!isMine(m)) {
      setPartnerTyping(false);
      markReadSoon();
    }
  }

  function updateOlderButton() {
    ui.older.hidden = !state.hasMore;
    ui.older.textContent = state.loadingOlder ? T.loadingOlder : T.older;
  }

  async function loadLatest() {
    const page = await api("GET", `/chat/rooms/${state.roomId}/messages?limit=${PAGE_SIZE}`);
    for (const m of page.messages.slice().reverse()) addMessage(m);
    state.hasMore = page.hasMore;
    if (page.nextCursor != null) state.oldestSeq = page.nextCursor;
    updateOlderButton();
    scrollToBottom();
    fillViewport();
  }

  // Scrolling back: the next page is every message below the oldest one shown (the cursor).
  async function loadOlder() {
    if (!state.hasMore || state.loadingOlder || state.oldestSeq === null) return;
    state.loadingOlder = true;
    updateOlderButton();
    try {
      const page = await api(
        "GET",
        `/chat/rooms/${state.roomId}/messages?before=${state.oldestSeq}&limit=${PAGE_SIZE}`,
      );
      const s = ui.scroller;
      const fromBottom = s.scrollHeight - s.scrollTop;
      for (const m of page.messages) addMessage(m);
      s.scrollTop = s.scrollHeight - fromBottom; // keep the reader where they were
      state.hasMore = page.hasMore;
    } catch (err) {
      toast(`${T.error}: ${err.message}`);
    } finally {
      state.loadingOlder = false;
      updateOlderButton();
    }
    fillViewport();
  }

  // With too few messages to scroll, the scroll-back gesture cannot happen: load more now.
  function fillViewport() {
    const s = ui.scroller;
    if (state.hasMore && s.scrollHeight <= s.clientHeight + 4) setTimeout(loadOlder, 0);
  }

  // -- read marks ------------------------------------------------------------------------------

  function markReadSoon() {
    clearTimeout(state.readTimer);
    state.readTimer = setTimeout(markRead, 120);
  }

  function markRead() {
    if (document.visibilityState !== "visible" || !state.roomId) return;
    let upTo = 0;
    for (const [seq, entry] of state.bySeq) {
      if (!isMine(entry.m) && !entry.m.isRead && seq > upTo) upTo = seq;
    }
    if (upTo === 0 || upTo <= state.readSent) return;
    state.readSent = upTo;
    if (!publish(`/app/chat/${state.roomId}/read`, { upToSeq: upTo })) {
      state.readSent = 0;
      api("POST", `/chat/rooms/${state.roomId}/read`, { upToSeq: upTo })
        .then(onEvent)
        .catch(() => {}); // tried again on the next (re)connect
    }
  }

  function onReadReceipt(ev) {
    const seqs = ev.seqs || [];
    for (const seq of seqs) {
      const entry = state.bySeq.get(seq);
      if (!entry) continue;
      entry.m.isRead = true;
      setUnreadMark(entry);
    }
  }

  // Read receipts are not replayed on resume: after a reconnect, ask which of my unread
  // messages the partner read meanwhile.
  async function refreshReadState() {
    let from = Infinity;
    for (const [seq, entry] of state.bySeq) {
      if (isMine(entry.m) && !entry.m.isRead && seq < from) from = seq;
    }
    if (from === Infinity) return;
    const page = await api(
      "GET",
      `/chat/rooms/${state.roomId}/messages?after=${from - 1}&order=asc&limit=100`,
    );
    for (const m of page.messages) addMessage(m);
  }

  // -- sending ---------------------------------------------------------------------------------

  function publish(destination, body, headers) {
    const client = state.client;
    if (!state.connected || !client || !client.connected) return false;
    try {
      client.publish({
        destination,
        body: JSON.stringify(body),
        headers: { "content-type": "application/json", ...(headers || {}) },
      });
      return true;
    } catch (_) {
      return false; // the socket went away under us: the reconnect takes over
    }
  }

  function enqueue(body, li, file) {
    const item = { body, el: li, status: "sending", acked: false, attempt: 0, timer: null, file };
    state.outbox.set(body.tempId, item);
    setStatus(li, "sending");
    ui.list.append(li); // below every stored message until the server gives it a seq
    scrollToBottom();
    return item;
  }

  // One SEND with a RECEIPT; a RECEIPT means the message is stored. Without one, the message
  // is sent again (same tempId) on the next connection.
  function transmit(item) {
    if (!state.connected || !state.client) return;
    item.attempt += 1;
    const receipt = `${item.body.tempId}#${item.attempt}`;
    try {
      state.client.watchForReceipt(receipt, () => {
        item.acked = true;
        clearTimeout(item.timer);
        if (state.outbox.get(item.body.tempId) === item) {
          item.status = "sent";
          setStatus(item.el, "sent");
        }
      });
    } catch (_) {
      return;
    }
    if (!publish(`/app/chat/${state.roomId}`, item.body, { receipt })) return;
    clearTimeout(item.timer);
    item.timer = setTimeout(() => {
      if (!item.acked && state.connected) failMessage(item);
    }, RECEIPT_TIMEOUT_MS);
  }

  function failMessage(item) {
    clearTimeout(item.timer);
    if (state.outbox.get(item.body.tempId) !== item) return;
    item.status = "failed";
    setStatus(item.el, "failed");
  }

  function flushOutbox() {
    for (const item of state.outbox.values()) {
      if (item.status === "sending" && !item.acked && item.body.imageUrl !== null) transmit(item);
    }
  }

  function retryMessage(tempId) {
    const item = state.outbox.get(tempId);
    if (!item || item.status !== "failed") return;
    item.status = "sending";
    item.acked = false;
    setStatus(item.el, "sending");
    if (item.body.type === "IMAGE" && !item.body.imageUrl) upload(item);
    else transmit(item);
  }

  function sendText(text) {
    const body = { type: "TEXT", content: text, tempId: newTempId() };
    const li = renderBubble({ ...body, senderId: state.me });
    transmit(enqueue(body, li));
  }

  function sendImage(file) {
    const body = { type: "IMAGE", imageUrl: null, tempId: newTempId() };
    const li = renderBubble({ ...body, senderId: state.me }, URL.createObjectURL(file));
    upload(enqueue(body, li, file));
  }

  // The presigned upload: ask for a ticket, put the file where it says, then send the IMAGE.
  async function upload(item) {
    const file = item.file;
    try {
      const ticket = await api("POST", `/chat/rooms/${state.roomId}/uploads`, {
        contentType: file.type,
        size: file.size,
      });
      let res;
      if (ticket.method === "PUT") {
        res = await fetch(ticket.uploadUrl, { method: "PUT", headers: ticket.headers || {}, body: file });
      } else {
        const form = new FormData();
        for (const [key, value] of Object.entries(ticket.fields || {})) form.append(key, value);
        form.append("file", file);
        res = await fetch(ticket.uploadUrl, { method: "POST", body: form });
      }
      if (!res.ok) throw new HttpError(res.status, await res.json().catch(() => null));
      item.body.imageUrl = ticket.imageUrl;
      item.file = null;
      transmit(item);
    } catch (err) {
      failMessage(item);
      toast(`${T.failed}: ${err.message}`);
    }
  }

  // -- typing ----------------------------------------------------------------------------------

  function sendTyping(typing) {
    if (publish(`/app/chat/${state.roomId}/typing`, { typing })) {
      state.typingSent = typing;
      state.typingAt = Date.now();
    }
  }

  function typingStarted() {
    if (!state.typingSent || Date.now() - state.typingAt > TYPING_REFRESH_MS) sendTyping(true);
    clearTimeout(state.typingIdle);
    state.typingIdle = setTimeout(typingStopped, TYPING_IDLE_MS);
  }

  function typingStopped() {
    clearTimeout(state.typingIdle);
    if (state.typingSent) sendTyping(false);
  }

  // -- events from the server ------------------------------------------------------------------

  function onEvent(ev) {
    if (!ev || typeof ev !== "object") return;
    if (ev.type === "READ_RECEIPT") return onReadReceipt(ev);
    if (ev.type === "SYSTEM") {
      if (ev.userId !== state.partner.id) return;
      if (ev.event === "USER_CONNECTED") setOnline(true);
      else if (ev.event === "USER_DISCONNECTED") setOnline(false);
      else if (ev.event === "TYPING") setPartnerTyping(Boolean(ev.typing));
      return;
    }
    addMessage(ev);
  }

  function onError(payload) {
    const item = payload.tempId ? state.outbox.get(payload.tempId) : null;
    if (item) failMessage(item);
    if (payload.code === "RATE_LIMITED") toast(T.rateLimited);
    else toast(`${payload.message || T.error}${payload.detail ? ` (${payload.detail})` : ""}`);
  }

  // -- the connection --------------------------------------------------------------------------

  // A raw WebSocket first; when one never gets through (blocked by a proxy, or absent),
  // SockJS, which falls back to streaming and polling over plain HTTP.
  function openSocket() {
    state.attemptConnected = false;
    const noWebSocket = typeof WebSocket !== "function";
    const sockjs = Boolean(forcedTransport) || noWebSocket || state.mode === "sockjs";
    state.attemptMode = sockjs ? "sockjs" : "ws";
    if (sockjs) {
      const options = forcedTransport ? { transports: [forcedTransport] } : {};
      return new SockJS(`${location.origin}/ws/chat`, null, options);
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return new WebSocket(`${scheme}//${location.host}/ws/chat`, ["v12.stomp", "v11.stomp", "v10.stomp"]);
  }

  function onConnected() {
    const client = state.client;
    state.connected = true;
    state.everConnected = true;
    state.attemptConnected = true;
    state.worked[state.attemptMode] = true;
    state.readSent = 0;
    state.typingSent = false;
    setTransport(
      state.attemptMode === "ws" ? "websocket" : `sockjs/${client.webSocket.transport || "?"}`,
    );
    client.subscribe("/user/queue/errors", (frame) => onError(JSON.parse(frame.body)));
    // Resume: the server replays every message after the last seq seen, then goes live.
    const receipt = `sub-${Date.now().toString(36)}`;
    client.watchForReceipt(receipt, () => {
      // Presence and read marks are not replayed: once subscribed (so that no later change
      // can slip between), ask for them.
      refreshRoom().catch(() => {});
      refreshReadState().catch(() => {});
    });
    client.subscribe(
      `/topic/couple/${state.roomId}`,
      (frame) => onEvent(JSON.parse(frame.body)),
      { "x-resume-after-seq": String(state.lastSeq), receipt },
    );
    hideBanner();
    setConn("connected");
    flushOutbox();
    markReadSoon();
  }

  function onSocketClosed() {
    const wasConnected = state.connected;
    state.connected = false;
    if (!state.attemptConnected && !forcedTransport) {
      // This kind of socket never got through: try the other, unless it worked before.
      if (state.attemptMode === "ws" && !state.worked.ws) state.mode = "sockjs";
      else if (state.attemptMode === "sockjs" && !state.worked.sockjs) state.mode = "ws";
    }
    for (const item of state.outbox.values()) clearTimeout(item.timer);
    if (state.fatal) return;
    if (wasConnected) setPresenceUnknown();
    setConn(state.everConnected ? "reconnecting" : "connecting");
    showBanner(state.everConnected ? T.reconnecting : T.connecting);
  }

  function onStompError(frame) {
    let code = frame.headers.message || "";
    try {
      code = JSON.parse(frame.body).code || code;
    } catch (_) {
      // not JSON: the message header says it
    }
    if (FATAL_CODES.has(code)) showFatal(T.authTitle, T.auth);
    // Anything else (SERVER_SHUTDOWN, a slow consumer, ...): the socket closes, we reconnect.
  }

  function connect() {
    const client = new StompJs.Client({
      webSocketFactory: openSocket,
      connectHeaders: { Authorization: `Bearer ${token}` },
      reconnectDelay: 500,
      maxReconnectDelay: 4000,
      reconnectTimeMode: StompJs.ReconnectionTimeMode.EXPONENTIAL,
      connectionTimeout: 8000,
      heartbeatIncoming: 10000,
      heartbeatOutgoing: 10000,
      onConnect: onConnected,
      onStompError,
      onWebSocketClose: onSocketClosed,
      debug: () => {},
    });
    state.client = client;
    client.activate();
  }

  async function refreshRoom() {
    const room = await api("GET", "/chat/room");
    state.roomId = room.id;
    state.partner = {
      id: room.partner.id,
      name: room.partner.name,
      profileImage: room.partner.profileImage,
      online: room.partner.online,
    };
    renderPartner();
  }

  // -- the page --------------------------------------------------------------------------------

  function bindComposer() {
    ui.input.placeholder = T.placeholder;
    ui.send.textContent = T.send;
    ui.attach.title = T.attach;
    ui.attach.setAttribute("aria-label", T.attach);
    const submit = () => {
      const text = ui.input.value;
      if (!text.trim()) return;
      ui.input.value = "";
      autosize();
      typingStopped();
      sendText(text);
      ui.input.focus();
    };
    const autosize = () => {
      ui.input.style.height = "auto";
      ui.input.style.height = `${ui.input.scrollHeight}px`;
    };
    ui.composer.addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
    });
    ui.input.addEventListener("keydown", (event) => {
      // Enter sends; Shift+Enter is a new line. While a Hangul syllable is being composed
      // (IME), Enter only commits it.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        submit();
      }
    });
    ui.input.addEventListener("input", () => {
      autosize();
      if (ui.input.value.trim()) typingStarted();
      else typingStopped();
    });
    ui.input.addEventListener("blur", typingStopped);
    ui.attach.addEventListener("click", () => ui.file.click());
    ui.file.addEventListener("change", () => {
      for (const file of ui.file.files) sendImage(file);
      ui.file.value = "";
    });
    ui.older.addEventListener("click", loadOlder);
    ui.scroller.addEventListener("scroll", () => {
      // Our own scrolls do not unstick the reader, even when the event arrives after more
      // content (an image) has grown the list and before the resize observer scrolls again.
      if (ui.scroller.scrollTop !== state.autoTop) state.stuck = nearBottom();
      if (ui.scroller.scrollTop < 60) loadOlder();
    });
    // Images load, the typing row and the banner appear after the fact: a reader at the
    // bottom stays there.
    const keepDown = new ResizeObserver(() => {
      if (state.stuck) scrollToBottom();
    });
    keepDown.observe(ui.list);
    keepDown.observe(ui.typing);
    keepDown.observe(ui.scroller); // the banner comes and goes above it
    document.addEventListener("visibilitychange", markReadSoon);
  }

  async function start() {
    document.documentElement.lang = lang;
    bindComposer();
    if (!token) return showFatal(T.noTokenTitle, T.noToken);
    if (typeof StompJs === "undefined" || typeof SockJS === "undefined") {
      return showFatal(T.libsTitle, T.libs);
    }
    state.me = tokenSubject(token);
    setConn("connecting");
    showBanner(T.connecting);
    for (let attempt = 0; ; attempt += 1) {
      try {
        await refreshRoom();
        await loadLatest();
        break;
      } catch (err) {
        if (err.status === 401) return showFatal(T.authTitle, T.auth);
        if (err.status === 404 && err.code === "NOT_FOUND") return showFatal(T.noRoomTitle, T.noRoom);
        await sleep(Math.min(500 * 2 ** attempt, 4000)); // the server is not up (yet)
      }
    }
    connect();
  }

  start();
})();
