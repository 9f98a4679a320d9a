/* The ieum-chat demo page: one member of a couple, in a browser.
 *
 * Open it as /demo?token=JWT (the URL `ieum-chat demo` prints). Optional parameters:
 *   transport=xhr-streaming  SockJS with only that transport (any SockJS transport name)
 *   lang=ko|en               the interface language (default: the browser's)
 *
 * REST (Authorization: Bearer) gives the room, the history (newest first, scrolled back by
 * the seq cursor), read marks and presigned uploads; STOMP (@stomp/stompjs) over a raw
 * WebSocket at /ws/chat, or over sockjs-client when WebSocket is unavailable or blocked,
 * carries live messages, their changes, read receipts, typing and presence.
 *
 * Media (media.js): the attach button takes a picture, a sound, a video or a document (the
 * message type follows the file's type: IMAGE, AUDIO, VIDEO, FILE), the microphone button
 * records a voice note (press to start, press again to send); each is uploaded (ticket, PUT or
 * form POST, completion), then SENT with the upload's mediaUrl. A refused upload (413 too large,
 * 415 not a type the server takes, 429 the couple's bytes of the day) fails its bubble with a
 * line saying why.
 *
 * A message changes after it is sent: a long press (touch) or a right click (mouse) on a bubble
 * opens its menu: react, reply (the message sent next carries replyTo), edit (my own text),
 * unsend (my own: a tombstone for both) and delete for me (gone from my devices only). Each
 * change is an event in the couple's stream (MESSAGE_EDITED, MESSAGE_UNSENT, REACTION,
 * READ_RECEIPT), numbered by the same seq as the messages, so message seqs may skip.
 *
 * Nothing is lost across a reconnect: the page keeps the last seq of the stream it has seen
 * (messages and events alike) and SUBSCRIBEs with x-resume-after-seq (the server replays the
 * messages as they are now and the events since, then goes live); it re-sends every message
 * and change without a RECEIPT under the same tempId (the server applies it once).
 * State on the DOM, for people and tests alike: body[data-conn,data-seq (the stream position),
 * data-gaps (seqs the stream skipped: none expected),data-unread (the partner's messages I have
 * not read)], li.msg[data-seq,data-id,data-state,data-temp-id,data-unsent,data-edited,data-type,
 * data-upload-error (the refused upload's code)], .bubble.media (img, audio, video, a.file-chip,
 * .duration), #record[data-recording],
 * .unread (the "1" of a message the partner has not read), .quote[data-reply-to],
 * .reactions .chip[data-emoji,data-count,aria-pressed], #menu-layer, #context-bar[data-mode],
 * #presence[data-online], #typing[hidden], #transport[data-transport],
 * body[data-push] (how push registration went: see push.js), body[data-notified] (notifications
 * this page showed for the partner's messages while it was hidden).
 *
 * Notifications (push.js): the page says which device it is (x-device-id on CONNECT, a stable
 * id per browser), registers for Web Push when the browser and the server can, and shows a
 * notification itself for a partner's message that arrives while the tab is hidden.
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
      attach: "사진·동영상·파일 보내기",
      record: "음성 메시지 녹음",
      stopRecording: "녹음 끝내고 보내기",
      micFailed: "마이크를 사용할 수 없어요",
      voice: "음성 메시지",
      video: "동영상",
      file: "파일",
      download: "내려받기",
      uploadFailed: "올리지 못했어요",
      uploadRefused: {
        PAYLOAD_TOO_LARGE: "파일이 너무 커요",
        UNSUPPORTED_MEDIA_TYPE: "보낼 수 없는 형식이에요",
        QUOTA_EXCEEDED: "오늘 올릴 수 있는 용량을 다 썼어요",
      },
      sending: "전송 중",
      failed: "전송 실패",
      retry: "다시 보내기",
      older: "이전 메시지 보기",
      loadingOlder: "불러오는 중…",
      noTokenTitle: "토큰이 없어요",
      noToken: "`ieum-chat demo`가 출력한 주소(…/demo?token=…)로 열어 주세요.",
      authTitle: "인증에 실패했어요",
      auth: "토큰이 잘못되었거나 만료되었어요. `ieum-chat demo`를 다시 실행하고 새 주소로 열어 주세요.",
      dissolvedTitle: "커플 연결이 해제되었어요",
      dissolved: "이 채팅방은 닫혔어요. 다시 연결되면 새 채팅방에서 이야기할 수 있어요.",
      deletedTitle: "탈퇴한 계정이에요",
      deleted: "이 계정으로는 더 이상 채팅할 수 없어요.",
      noRoomTitle: "채팅방이 없어요",
      noRoom: "이 사용자는 아직 커플로 연결되지 않았어요.",
      libsTitle: "브라우저 라이브러리가 없어요",
      libs: "`make demo`(web/에서 npm ci)로 설치한 뒤 새로고침해 주세요.",
      rateLimited: "메시지를 너무 빠르게 보내고 있어요. 잠시 후 다시 시도해 주세요.",
      error: "오류가 발생했어요",
      imageBroken: "사진을 표시할 수 없어요",
      edited: "(수정됨)",
      unsent: "메시지가 취소되었습니다",
      photo: "사진",
      sticker: "이모티콘",
      me: "나",
      react: "공감",
      menu: { reply: "답장", edit: "수정", copy: "복사", unsend: "보내기 취소", delete: "나에게서 삭제" },
      replyTo: (name) => `${name}에게 답장`,
      editing: "메시지 수정",
      save: "수정",
      closeBar: "닫기",
      copied: "복사했어요",
      newMessage: "새 메시지",
      push: {
        registered: "알림 켜짐",
        denied: "알림 꺼짐",
        unsupported: "알림 미지원",
        "no-key": "푸시 미설정",
        failed: "푸시 사용 불가",
      },
      actionFailed: {
        edit: "수정하지 못했어요",
        unsend: "보내기를 취소하지 못했어요",
        delete: "삭제하지 못했어요",
        react: "공감하지 못했어요",
      },
    },
    en: {
      connecting: "Connecting…",
      reconnecting: "Connection lost. Reconnecting…",
      online: "online",
      offline: "offline",
      typing: (name) => `${name} is typing…`,
      placeholder: "Type a message",
      send: "Send",
      attach: "Send a photo, video or file",
      record: "Record a voice message",
      stopRecording: "Stop and send",
      micFailed: "The microphone is not available",
      voice: "Voice message",
      video: "Video",
      file: "File",
      download: "Download",
      uploadFailed: "Could not upload",
      uploadRefused: {
        PAYLOAD_TOO_LARGE: "The file is too large",
        UNSUPPORTED_MEDIA_TYPE: "This kind of file cannot be sent",
        QUOTA_EXCEEDED: "Today's upload allowance is used up",
      },
      sending: "Sending",
      failed: "Not sent",
      retry: "Retry",
      older: "Earlier messages",
      loadingOlder: "Loading…",
      noTokenTitle: "No token",
      noToken: "Open the URL printed by `ieum-chat demo` (…/demo?token=…).",
      authTitle: "Authentication failed",
      auth: "The token is invalid or expired. Run `ieum-chat demo` again and open a new URL.",
      dissolvedTitle: "This couple was dissolved",
      dissolved: "This chat is closed. A couple formed again gets a new chat.",
      deletedTitle: "This account was deleted",
      deleted: "This account can no longer chat.",
      noRoomTitle: "No chat room",
      noRoom: "This user is not in a couple yet.",
      libsTitle: "Browser libraries missing",
      libs: "Install them with `make demo` (npm ci in web/), then reload.",
      rateLimited: "You are sending too fast. Try again in a moment.",
      error: "Something went wrong",
      imageBroken: "Cannot show this picture",
      edited: "(edited)",
      unsent: "This message was unsent",
      photo: "Photo",
      sticker: "Sticker",
      me: "you",
      react: "React",
      menu: { reply: "Reply", edit: "Edit", copy: "Copy", unsend: "Unsend", delete: "Delete for me" },
      replyTo: (name) => `Reply to ${name}`,
      editing: "Edit message",
      save: "Save",
      closeBar: "Close",
      copied: "Copied",
      newMessage: "New message",
      push: {
        registered: "Notifications on",
        denied: "Notifications off",
        unsupported: "No notifications here",
        "no-key": "Push not set up",
        failed: "Push unavailable",
      },
      actionFailed: {
        edit: "Could not edit",
        unsend: "Could not unsend",
        delete: "Could not delete",
        react: "Could not react",
      },
    },
  };

  const PAGE_SIZE = 30;
  const RECEIPT_TIMEOUT_MS = 15000;
  const TYPING_REFRESH_MS = 2500; // re-announce while typing (the server drops repeats within 1 s)
  const TYPING_IDLE_MS = 3000; // no keystroke for this long: stopped typing
  const PARTNER_TYPING_TTL_MS = 6000; // a lost "typing: false" hides the indicator anyway
  const FATAL_CODES = new Set(["AUTH_FAILED", "TOKEN_EXPIRED"]);
  // The couple or the account is gone for good: the server would refuse a reconnect.
  const ENDED_CODES = { COUPLE_DISSOLVED: "dissolved", ACCOUNT_DELETED: "deleted" };
  const REACTIONS = ["❤️", "👍", "😂", "😮", "😢", "🙏"];
  const LONG_PRESS_MS = 450;
  const LONG_PRESS_SLOP_PX = 10; // a finger that moves further is scrolling, not pressing
  // The server's reply preview: the first 100 characters of a text, or a word for the others.
  const PREVIEW_LENGTH = 100;
  const SERVER_PREVIEW = { IMAGE: "사진", AUDIO: "음성 메시지", VIDEO: "동영상", FILE: "파일", STICKER: "이모티콘" };
  // The word a quote shows for each, in the page's language.
  const PREVIEW_WORD = { IMAGE: "photo", AUDIO: "voice", VIDEO: "video", FILE: "file", STICKER: "sticker" };
  const MEDIA_FIELDS = ["mediaUrl", "thumbnailUrl", "durationMs", "fileName", "size", "width", "height"];

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
    record: $("record"),
    input: $("input"),
    send: $("send"),
    bar: $("context-bar"),
    barTitle: $("context-title"),
    barText: $("context-text"),
    barClose: $("context-close"),
    menuLayer: $("menu-layer"),
    menu: $("menu"),
    push: $("push-status"),
  };

  const state = {
    me: null, // my user id (the token's sub)
    roomId: null,
    partner: { id: null, name: "", profileImage: null, online: false },
    // The stream position: the highest seq of the couple's stream seen (a message, a change
    // or the stand-in of a message I deleted); SUBSCRIBE resumes after it.
    lastSeq: 0,
    gaps: 0, // seqs the stream skipped (the server promises none)
    oldestSeq: null, // the history cursor
    hasMore: false,
    loadingOlder: false,
    bySeq: new Map(), // seq -> {el, m}
    byId: new Map(), // message id -> the same entries
    deleted: new Set(), // ids of messages I deleted for me: never shown again
    outbox: new Map(), // tempId -> {body, el, status, acked, attempt, timer, file, reply, localUrl}
    actions: new Map(), // tempId -> {kind, body, attempt}: changes without a RECEIPT yet
    menuFor: null, // the entry whose menu is open
    bar: null, // {mode: "reply"|"edit", entry, draft}: the bar above the composer
    unreadQueued: false,
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
    pushPreview: true, // my setting: notifications show the sender and the text
    notified: 0, // notifications shown for the partner's messages while hidden
    recording: null, // the voice note being recorded (media.js)
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
    for (const id of ["input", "send", "attach", "record"]) $(id).disabled = true;
    if (state.recording) state.recording.cancel();
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
    showUnreadCount();
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

  // The first n characters (code points, as the server counts them).
  function firstChars(text, n) {
    const chars = Array.from(text || "");
    return chars.length > n ? chars.slice(0, n).join("") : text || "";
  }

  // The server's preview of a message, for the reply quote of a message not sent yet.
  function previewOf(m) {
    if (m.type === "TEXT") return firstChars(m.content, PREVIEW_LENGTH);
    if (IeumMedia.isMedia(m.type) && m.content) return firstChars(m.content, PREVIEW_LENGTH);
    return SERVER_PREVIEW[m.type] || "";
  }

  function quoteOf(m) {
    return { messageId: m.id, senderId: m.senderId, type: m.type, preview: previewOf(m), unsent: false };
  }

  function quoteText(reply) {
    if (reply.unsent) return T.unsent;
    if (reply.type === "STICKER") return T.sticker;
    const word = PREVIEW_WORD[reply.type];
    if (word && reply.preview === SERVER_PREVIEW[reply.type]) return T[word];
    return reply.preview || "";
  }

  function nameOf(userId) {
    return userId === state.me ? T.me : state.partner.name;
  }

  // li.msg: [.sender] [.quote] .row(.bubble, .meta(.unread, .state, .edited, time)) [.reactions]
  function renderBubble(m, localUrl) {
    // A notice of the service (senderId null) is neither member's: set apart, centred.
    const side = m.type === "NOTICE" ? "notice" : isMine(m) ? "mine" : "theirs";
    const li = el("li", `msg ${side}`);
    li.dataset.type = m.type || "TEXT";
    if (m.senderId) li.dataset.sender = m.senderId;
    if (m.tempId) li.dataset.tempId = m.tempId;
    if (!isMine(m)) li.append(el("div", "sender", m.senderName || state.partner.name));
    const row = el("div", "row");
    const bubble = el("div", "bubble");
    const meta = el("div", "meta");
    const unread = el("span", "unread", "1");
    unread.hidden = true;
    const status = el("span", "state");
    const edited = el("span", "edited", T.edited);
    edited.hidden = true;
    const time = el("time", null, clock(m.createdAt));
    meta.append(unread, status, edited, time);
    row.append(bubble, meta);
    li.append(row);
    paintBody(li, m, localUrl);
    paintChanges(li, m);
    return li;
  }

  // What the bubble holds: the text, the media, or the tombstone of an unsent message.
  // localUrl: the file of a message still being uploaded.
  function paintBody(li, m, localUrl) {
    const bubble = li.querySelector(".bubble");
    bubble.className = "bubble";
    bubble.replaceChildren();
    if (m.unsent) {
      li.dataset.unsent = "true";
      bubble.classList.add("tombstone");
      bubble.textContent = T.unsent;
      return;
    }
    delete li.dataset.unsent;
    if (IeumMedia.isMedia(m.type)) {
      IeumMedia.render(bubble, m, T, localUrl);
    } else if (m.type === "STICKER") {
      bubble.textContent = `[${m.content}]`;
    } else {
      bubble.textContent = m.content || "";
    }
  }

  // What may change around the bubble: the quote, the "(edited)" mark, the reaction chips.
  function paintChanges(li, m) {
    paintQuote(li, m.replyTo);
    const edited = Boolean(m.editedAt) && !m.unsent;
    li.querySelector(".edited").hidden = !edited;
    if (edited) li.dataset.edited = "true";
    else delete li.dataset.edited;
    paintReactions(li, m);
  }

  function paintQuote(li, reply) {
    let quote = li.querySelector(".quote");
    if (!reply) {
      if (quote) quote.remove();
      return;
    }
    if (!quote) {
      quote = el("button", "quote");
      quote.type = "button";
      quote.append(el("span", "quote-name"), el("span", "quote-text"));
      li.insertBefore(quote, li.querySelector(".row"));
    }
    quote.dataset.replyTo = reply.messageId;
    quote.classList.toggle("gone", Boolean(reply.unsent));
    quote.querySelector(".quote-name").textContent = reply.senderId ? T.replyTo(nameOf(reply.senderId)) : "";
    quote.querySelector(".quote-text").textContent = quoteText(reply);
  }

  function paintReactions(li, m) {
    let box = li.querySelector(".reactions");
    const reactions = m.unsent ? [] : m.reactions || [];
    if (reactions.length === 0) {
      if (box) box.remove();
      return;
    }
    if (!box) {
      box = el("div", "reactions");
      li.append(box);
    }
    box.replaceChildren(
      ...reactions.map((r) => {
        const chip = el("button", "chip");
        chip.type = "button";
        chip.dataset.emoji = r.emoji;
        chip.dataset.count = String(r.userIds.length);
        chip.setAttribute("aria-pressed", String(r.userIds.includes(state.me)));
        chip.append(el("span", "chip-emoji", r.emoji), el("span", "chip-count", String(r.userIds.length)));
        return chip;
      }),
    );
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
    // KakaoTalk's "1": my message the partner has not read yet (an unsent one has none).
    parts(entry.el).unread.hidden = !(isMine(entry.m) && !entry.m.isRead && !entry.m.unsent);
  }

  // The partner's messages I have not read, in the title (a tab in the background says how
  // many); reading them on another of my devices clears it here too.
  function showUnreadCount() {
    state.unreadQueued = false;
    let count = 0;
    for (const entry of state.bySeq.values()) {
      if (!isMine(entry.m) && !entry.m.isRead && !entry.m.unsent) count += 1;
    }
    ui.body.dataset.unread = String(count);
    document.title = `${count ? `(${count}) ` : ""}${state.partner.name} · ieum chat`;
  }

  function unreadChanged() {
    if (state.unreadQueued) return;
    state.unreadQueued = true;
    queueMicrotask(showUnreadCount);
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

  // A stored message (history, live, replay or the echo of my own send): shown once, by seq,
  // as it is now (edited, unsent, its reactions), unless I deleted it.
  function addMessage(m) {
    if (typeof m.seq !== "number" || state.deleted.has(m.id)) return;
    if (state.oldestSeq === null || m.seq < state.oldestSeq) state.oldestSeq = m.seq;
    const known = state.bySeq.get(m.seq);
    if (known) {
      if (m.isRead && !known.m.isRead) {
        known.m.isRead = true;
        setUnreadMark(known);
        unreadChanged();
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
      // Media: the stored file (its thumbnail, its link) takes the local one's place. A change
      // made already (from another of my devices) before it came back shows too.
      if (m.unsent || m.editedAt || IeumMedia.isMedia(m.type)) paintBody(li, m);
      if (pending.localUrl) URL.revokeObjectURL(pending.localUrl);
      parts(li).time.textContent = clock(m.createdAt);
      paintChanges(li, m);
    } else {
      li = renderBubble(m);
    }
    li.dataset.seq = String(m.seq);
    if (m.id) li.dataset.id = m.id;
    setStatus(li, "sent");
    const entry = { el: li, m };
    state.bySeq.set(m.seq, entry);
    if (m.id) state.byId.set(m.id, entry);
    setUnreadMark(entry);
    insertBySeq(li, m.seq);
    unreadChanged();
    if (state.stuck || pending) scrollToBottom();
    if (!isMine(m)) {
      setPartnerTyping(false);
      markReadSoon();
    }
  }

  // -- changes of sent messages --------------------------------------------------------------

  // Every bubble quoting the message `id` (stored or still being sent), with its quote.
  function* quotesOf(id) {
    for (const entry of state.bySeq.values()) {
      if (entry.m.replyTo && entry.m.replyTo.messageId === id) yield [entry.el, entry.m.replyTo];
    }
    for (const item of state.outbox.values()) {
      if (item.reply && item.reply.messageId === id) yield [item.el, item.reply];
    }
  }

  // A message rendered from the store (a replay, a history page) carries asOfSeq: the stream
  // position its state reflects. A change at or below it is in it already; applying it again
  // would be harmless for an edit, but would move a reaction removed and re-added to the end.
  function reflected(ev) {
    const entry = state.byId.get(ev.messageId);
    return Boolean(entry && entry.m.asOfSeq != null && ev.seq != null && ev.seq <= entry.m.asOfSeq);
  }

  function onEdited(ev) {
    if (ev.content == null) return; // unsent since (its MESSAGE_UNSENT follows): nothing to show
    if (reflected(ev)) return;
    for (const [li, reply] of quotesOf(ev.messageId)) {
      if (reply.unsent) continue;
      reply.preview = firstChars(ev.content, PREVIEW_LENGTH);
      paintQuote(li, reply);
    }
    const entry = state.byId.get(ev.messageId);
    if (!entry || entry.m.unsent) return;
    entry.m.content = ev.content;
    entry.m.editedAt = ev.editedAt;
    paintBody(entry.el, entry.m);
    paintChanges(entry.el, entry.m);
  }

  function onUnsent(ev) {
    for (const [li, reply] of quotesOf(ev.messageId)) {
      reply.unsent = true;
      reply.preview = null;
      paintQuote(li, reply);
    }
    const entry = state.byId.get(ev.messageId);
    if (!entry) return;
    Object.assign(entry.m, { unsent: true, content: null, imageUrl: null, reactions: [] });
    for (const key of MEDIA_FIELDS) entry.m[key] = null;
    paintBody(entry.el, entry.m);
    paintChanges(entry.el, entry.m);
    setUnreadMark(entry);
    unreadChanged();
    forget(entry);
  }

  // A reaction added twice or removed when absent changes nothing: a replay may repeat one.
  function onReaction(ev) {
    const entry = state.byId.get(ev.messageId);
    if (!entry || entry.m.unsent || reflected(ev)) return;
    const reactions = entry.m.reactions || (entry.m.reactions = []);
    let reaction = reactions.find((r) => r.emoji === ev.emoji);
    if (ev.op === "add") {
      if (!reaction) {
        reaction = { emoji: ev.emoji, userIds: [] };
        reactions.push(reaction);
      }
      if (!reaction.userIds.includes(ev.userId)) reaction.userIds.push(ev.userId);
    } else if (reaction) {
      reaction.userIds = reaction.userIds.filter((id) => id !== ev.userId);
      if (reaction.userIds.length === 0) reactions.splice(reactions.indexOf(reaction), 1);
    }
    paintReactions(entry.el, entry.m);
  }

  // Deleted for me (here or on another of my devices): gone from the list for good.
  function onDeleted(ev) {
    if (ev.userId !== state.me) return;
    state.deleted.add(ev.messageId);
    const entry = state.byId.get(ev.messageId);
    if (!entry) return;
    state.byId.delete(ev.messageId);
    state.bySeq.delete(entry.m.seq);
    const next = entry.el.nextElementSibling;
    entry.el.remove();
    if (next) regroup(next);
    unreadChanged();
    forget(entry);
  }

  function onReadReceipt(ev) {
    // The partner read my messages (their "1" goes), or I did on another device.
    for (const seq of ev.seqs || []) {
      const entry = state.bySeq.get(seq);
      if (!entry || entry.m.isRead || entry.m.senderId === ev.readerId) continue;
      entry.m.isRead = true;
      setUnreadMark(entry);
    }
    unreadChanged();
  }

  // A message that cannot change any more: its menu and bar close.
  function forget(entry) {
    if (state.menuFor === entry) closeMenu();
    if (state.bar && state.bar.entry === entry) closeBar();
  }

  const CHANGES = {
    MESSAGE_EDITED: onEdited,
    MESSAGE_UNSENT: onUnsent,
    REACTION: onReaction,
    MESSAGE_DELETED: onDeleted,
    READ_RECEIPT: onReadReceipt,
  };

  function updateOlderButton() {
    ui.older.hidden = !state.hasMore;
    ui.older.textContent = state.loadingOlder ? T.loadingOlder : T.older;
  }

  // The newest page, before the first SUBSCRIBE: its messages are as they are now, so the
  // stream resumes after the newest of them (the changes since are replayed, harmlessly again).
  async function loadLatest() {
    const page = await api("GET", `/chat/rooms/${state.roomId}/messages?limit=${PAGE_SIZE}`);
    for (const m of page.messages.slice().reverse()) addMessage(m);
    setPosition(Math.max(state.lastSeq, ...page.messages.map((m) => m.seq)));
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

  // `file`: a media message's file (a File or a recorded Blob), until it is uploaded;
  // `localUrl`: the object URL its bubble shows meanwhile.
  function enqueue(body, li, file, reply, localUrl) {
    const item = { body, el: li, status: "sending", acked: false, attempt: 0, timer: null, file, reply, localUrl };
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
      if (item.status === "sending" && !item.acked && !item.file) transmit(item); // uploaded
    }
  }

  function retryMessage(tempId) {
    const item = state.outbox.get(tempId);
    if (!item || item.status !== "failed") return;
    item.status = "sending";
    item.acked = false;
    setStatus(item.el, "sending");
    showUploadError(item.el, null);
    if (item.file) upload(item);
    else transmit(item);
  }

  // `replyTo`: the entry of the message answered, or null.
  function sendText(text, replyTo) {
    const body = { type: "TEXT", content: text, tempId: newTempId() };
    const reply = replyTo ? quoteOf(replyTo.m) : null;
    if (reply) body.replyTo = reply.messageId;
    const li = renderBubble({ ...body, senderId: state.me, replyTo: reply });
    transmit(enqueue(body, li, null, reply));
  }

  // A chosen file or a recorded voice note: its bubble at once (the local file in it), then the
  // upload, then the SEND. `extra`: what the page knows better than the file (a recording's
  // duration).
  function sendMedia(file, replyTo, extra) {
    const type = IeumMedia.kindOf(file);
    const body = { type, tempId: newTempId() };
    if (type === "IMAGE") body.imageUrl = null;
    else body.mediaUrl = null;
    Object.assign(body, extra || {});
    const reply = replyTo ? quoteOf(replyTo.m) : null;
    if (reply) body.replyTo = reply.messageId;
    const localUrl = URL.createObjectURL(file);
    const shown = { ...body, senderId: state.me, replyTo: reply, size: file.size };
    if (type === "FILE") shown.fileName = file.name;
    const li = renderBubble(shown, localUrl);
    upload(enqueue(body, li, file, reply, localUrl));
  }

  // A change of a sent message (edit, unsend, delete, react), like a message: SENT with a
  // RECEIPT, sent again under the same tempId on the next connection until one comes (the
  // server applies it once). Its effect shows when its event comes back in the stream.
  function change(kind, body) {
    const item = { kind, body: { ...body, tempId: newTempId() }, attempt: 0 };
    state.actions.set(item.body.tempId, item);
    transmitChange(item);
  }

  function transmitChange(item) {
    if (!state.connected || !state.client) return; // on the next connection
    item.attempt += 1;
    const receipt = `${item.body.tempId}#${item.attempt}`;
    try {
      state.client.watchForReceipt(receipt, () => state.actions.delete(item.body.tempId));
    } catch (_) {
      return;
    }
    publish(`/app/chat/${state.roomId}/${item.kind}`, item.body, { receipt });
  }

  function react(entry, emoji) {
    const reaction = (entry.m.reactions || []).find((r) => r.emoji === emoji);
    const mine = Boolean(reaction && reaction.userIds.includes(state.me));
    change("react", { messageId: entry.m.id, emoji, op: mine ? "remove" : "add" });
  }

  // The presigned upload (media.js), then the SEND: an IMAGE names its imageUrl, the others
  // their mediaUrl (the server adds what it learnt of the file).
  async function upload(item) {
    const file = item.file;
    const contentType = IeumMedia.contentTypeOf(file);
    const fileName = item.body.type === "FILE" ? file.name : null;
    try {
      const result = await IeumMedia.upload(api, state.roomId, file, { contentType, fileName });
      if (item.body.type === "IMAGE") item.body.imageUrl = result.imageUrl || result.mediaUrl;
      else item.body.mediaUrl = result.mediaUrl;
      item.file = null;
      transmit(item);
    } catch (err) {
      failMessage(item);
      showUploadError(item.el, err);
      toast(uploadErrorText(err));
    }
  }

  function uploadErrorText(err) {
    const headline = T.uploadRefused[err.code] || T.uploadFailed;
    return err.message && err.message !== headline ? `${headline}: ${err.message}` : headline;
  }

  // The line under a bubble whose upload was refused (null: none).
  function showUploadError(li, err) {
    let line = li.querySelector(".upload-error");
    if (!err) {
      delete li.dataset.uploadError;
      if (line) line.remove();
      return;
    }
    li.dataset.uploadError = err.code || String(err.status || "network");
    if (!line) {
      line = el("div", "upload-error");
      line.setAttribute("role", "alert");
      li.append(line);
    }
    line.textContent = uploadErrorText(err);
  }

  // The microphone button: the first press records, the second sends the voice note.
  async function toggleRecording() {
    if (state.recording) {
      const recording = state.recording;
      state.recording = null;
      showRecording(false);
      const reply = state.bar && state.bar.mode === "reply" ? state.bar.entry : null;
      if (reply) closeBar();
      try {
        const voice = await recording.stop();
        if (voice.blob.size === 0) return;
        sendMedia(voice.blob, reply, { durationMs: voice.durationMs });
      } catch (err) {
        toast(`${T.micFailed}: ${err.message}`);
      }
      return;
    }
    try {
      ui.record.disabled = true;
      state.recording = await IeumMedia.recordVoice();
      showRecording(true);
    } catch (err) {
      toast(`${T.micFailed}: ${err.message}`);
    } finally {
      ui.record.disabled = state.fatal;
    }
  }

  function showRecording(on) {
    ui.record.dataset.recording = String(on);
    const label = on ? T.stopRecording : T.record;
    ui.record.title = label;
    ui.record.setAttribute("aria-label", label);
    ui.record.setAttribute("aria-pressed", String(on));
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

  function setPosition(seq) {
    state.lastSeq = seq;
    ui.body.dataset.seq = String(seq);
  }

  // The couple's topic: the stream in seq order (messages, changes, and in a replay the
  // stand-in of each message I deleted), each seq once and none skipped, plus typing and
  // presence without a seq. Every seq moves the position the next SUBSCRIBE resumes after.
  function onStream(ev) {
    if (!ev || typeof ev !== "object") return;
    if (typeof ev.seq === "number") {
      if (ev.seq <= state.lastSeq) return; // had it already
      if (isPartnerMessage(ev)) notifyIfHidden(ev);
      if (ev.seq !== state.lastSeq + 1) {
        state.gaps += 1;
        ui.body.dataset.gaps = String(state.gaps);
      }
      setPosition(ev.seq);
    }
    onEvent(ev);
  }

  // A payload from the stream, /user/queue/events (my deletes, without a seq) or a REST answer.
  function onEvent(ev) {
    if (!ev || typeof ev !== "object") return;
    const apply = Object.hasOwn(CHANGES, ev.type) ? CHANGES[ev.type] : null;
    if (apply) return apply(ev);
    if (ev.type === "SYSTEM") {
      if (ev.userId !== state.partner.id) return;
      if (ev.event === "USER_CONNECTED") setOnline(true);
      else if (ev.event === "USER_DISCONNECTED") setOnline(false);
      else if (ev.event === "TYPING") setPartnerTyping(Boolean(ev.typing));
      return;
    }
    addMessage(ev);
  }

  // An error on /user/queue/errors: a message with its tempId fails (and offers a retry); a
  // change with its tempId is dropped, and the toast says which kind did not go through.
  function onError(payload) {
    const item = payload.tempId ? state.outbox.get(payload.tempId) : null;
    if (item) failMessage(item);
    const action = payload.tempId ? state.actions.get(payload.tempId) : null;
    if (action) state.actions.delete(payload.tempId);
    const said = `${payload.message || T.error}${payload.detail ? ` (${payload.detail})` : ""}`;
    if (payload.code === "RATE_LIMITED") toast(T.rateLimited);
    else if (action) toast(`${T.actionFailed[action.kind]}: ${said}`);
    else toast(said);
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
    // My deletes (made on any of my devices, live or since the resume point): here, not on the
    // topic. Subscribed first, so that a replay tells of them here too.
    client.subscribe("/user/queue/events", (frame) => onEvent(JSON.parse(frame.body)));
    // Resume: the server replays the stream after the last seq seen, then goes live.
    const receipt = `sub-${Date.now().toString(36)}`;
    client.watchForReceipt(receipt, () => {
      // Presence is not replayed: once subscribed (so that no later change can slip
      // between), ask for it. Read marks are: they come in the stream.
      refreshRoom().catch(() => {});
    });
    client.subscribe(
      `/topic/couple/${state.roomId}`,
      (frame) => onStream(JSON.parse(frame.body)),
      { "x-resume-after-seq": String(state.lastSeq), receipt },
    );
    hideBanner();
    setConn("connected");
    flushOutbox();
    for (const item of state.actions.values()) transmitChange(item);
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
    const ended = ENDED_CODES[code];
    if (ended) showFatal(T[`${ended}Title`], T[ended]);
    // Anything else (SERVER_SHUTDOWN, a slow consumer, ...): the socket closes, we reconnect.
  }

  function connect() {
    const client = new StompJs.Client({
      webSocketFactory: openSocket,
      connectHeaders: { Authorization: `Bearer ${token}`, ...deviceHeader() },
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

  // -- notifications ---------------------------------------------------------------------------

  const pushReady = typeof IeumPush === "object";

  // Which device this session is: the server pushes nothing to a device that is connected.
  function deviceHeader() {
    return pushReady ? { "x-device-id": IeumPush.deviceId() } : {};
  }

  function isPartnerMessage(ev) {
    return (
      !Object.hasOwn(CHANGES, ev.type) &&
      ev.type !== "SYSTEM" &&
      typeof ev.id === "string" &&
      ev.senderId === state.partner.id &&
      !ev.unsent
    );
  }

  // The partner's message while this tab is hidden: a notification like the server's push
  // (the same tag: one per couple, the newest replacing the older).
  function notifyIfHidden(m) {
    if (!pushReady || document.visibilityState !== "hidden") return;
    const preview = state.pushPreview;
    let body = T.newMessage;
    if (preview) body = m.type === "TEXT" ? firstChars(m.content, PREVIEW_LENGTH) : quoteText(quoteOf(m));
    const note = {
      title: preview ? m.senderName || state.partner.name : "이음",
      body,
      tag: state.roomId,
      data: { coupleId: state.roomId, seq: m.seq, messageId: m.id, url: location.href },
    };
    IeumPush.notify(note).then(
      (shown) => {
        if (!shown) return;
        state.notified += 1;
        ui.body.dataset.notified = String(state.notified);
      },
      () => {},
    );
  }

  function reportPush(kind, detail) {
    ui.body.dataset.push = kind;
    const word = T.push[kind] || T.push.failed;
    ui.push.textContent = `· ${word}`;
    ui.push.title = detail || "";
  }

  async function setupPush() {
    if (!pushReady) return;
    try {
      state.pushPreview = (await api("GET", "/chat/settings")).pushPreview !== false;
    } catch (_) {
      // the default: previews on
    }
    await IeumPush.setup({
      api,
      fetchKey: async () => (await api("GET", "/chat/push/vapid-key")).publicKey,
      report: reportPush,
    });
  }

  // -- the message menu and the bar above the composer ---------------------------------------

  function autosize() {
    ui.input.style.height = "auto";
    ui.input.style.height = `${ui.input.scrollHeight}px`;
  }

  // The stored message under an event's target (a message still being sent has no menu).
  function entryAt(target) {
    const li = target instanceof Element ? target.closest("li.msg[data-seq]") : null;
    return li ? state.bySeq.get(Number(li.dataset.seq)) || null : null;
  }

  function menuButton(className, text, onClick) {
    const button = el("button", className, text);
    button.type = "button";
    button.setAttribute("role", "menuitem");
    button.addEventListener("click", () => {
      closeMenu();
      onClick();
    });
    return button;
  }

  // What a message offers: reactions and a reply while it stands; edit (text) and unsend for
  // my own; delete for me always.
  function openMenu(entry, x, y) {
    closeMenu();
    const m = entry.m;
    const mine = isMine(m);
    const items = [];
    if (!m.unsent) {
      const palette = el("div", "palette");
      palette.setAttribute("aria-label", T.react);
      for (const emoji of REACTIONS) {
        const button = menuButton("react", emoji, () => react(entry, emoji));
        button.dataset.emoji = emoji;
        const reaction = (m.reactions || []).find((r) => r.emoji === emoji);
        button.setAttribute("aria-pressed", String(Boolean(reaction && reaction.userIds.includes(state.me))));
        palette.append(button);
      }
      items.push(palette);
      items.push(["reply", () => startReply(entry)]);
      if (mine && m.type === "TEXT") items.push(["edit", () => startEdit(entry)]);
      if (m.type === "TEXT" && navigator.clipboard) {
        items.push(["copy", () => navigator.clipboard.writeText(m.content || "").then(() => toast(T.copied), () => {})]);
      }
      if (mine) items.push(["unsend", () => change("unsend", { messageId: m.id })]);
    }
    items.push(["delete", () => change("delete", { messageId: m.id })]);
    ui.menu.replaceChildren(
      ...items.map((item) => {
        if (item instanceof Element) return item;
        const [action, onClick] = item;
        const button = menuButton("action", T.menu[action], onClick);
        button.dataset.action = action;
        return button;
      }),
    );
    state.menuFor = entry;
    entry.el.classList.add("selected");
    ui.menuLayer.hidden = false;
    // Beside the pointer, inside the window: below it, or above when there is no room.
    const box = ui.menu.getBoundingClientRect();
    const left = Math.min(Math.max(8, x - box.width / 2), window.innerWidth - box.width - 8);
    const below = y + 12;
    const top = below + box.height + 8 <= window.innerHeight ? below : Math.max(8, y - box.height - 12);
    ui.menu.style.left = `${left}px`;
    ui.menu.style.top = `${top}px`;
  }

  function closeMenu() {
    if (!state.menuFor) return;
    state.menuFor.el.classList.remove("selected");
    state.menuFor = null;
    ui.menuLayer.hidden = true;
    ui.menu.replaceChildren();
  }

  function showBar(mode, entry, title, text, draft) {
    state.bar = { mode, entry, draft };
    ui.bar.dataset.mode = mode;
    ui.barTitle.textContent = title;
    ui.barText.textContent = text;
    ui.bar.hidden = false;
  }

  // Reply: a quote bar above the input; the next message sent carries replyTo.
  function startReply(entry) {
    closeBar();
    showBar("reply", entry, T.replyTo(nameOf(entry.m.senderId)), quoteText(quoteOf(entry.m)), "");
    ui.input.focus();
  }

  // Edit: the input holds the message's text (what was being written waits meanwhile).
  function startEdit(entry) {
    closeBar();
    const draft = ui.input.value;
    typingStopped();
    showBar("edit", entry, T.editing, entry.m.content || "", draft);
    ui.send.textContent = T.save;
    ui.input.value = entry.m.content || "";
    autosize();
    ui.input.focus();
    ui.input.setSelectionRange(ui.input.value.length, ui.input.value.length);
  }

  function closeBar() {
    const bar = state.bar;
    if (!bar) return;
    state.bar = null;
    ui.bar.hidden = true;
    delete ui.bar.dataset.mode;
    if (bar.mode === "edit") {
      ui.send.textContent = T.send;
      ui.input.value = bar.draft;
      autosize();
    }
  }

  // Back to the quoted message, when it is on the page.
  function showQuoted(id) {
    const entry = state.byId.get(id);
    if (!entry) return;
    entry.el.scrollIntoView({ block: "center", behavior: "smooth" });
    entry.el.classList.remove("flash");
    void entry.el.offsetWidth; // restart the animation
    entry.el.classList.add("flash");
  }

  // Right click (mouse) or long press (touch; Android also reports it as a contextmenu, which
  // then finds the menu open) opens a message's menu; a chip toggles my reaction.
  function bindMessages() {
    let press = null;
    const release = () => {
      if (press) clearTimeout(press.timer);
      press = null;
    };
    ui.list.addEventListener("contextmenu", (event) => {
      const entry = entryAt(event.target);
      if (!entry) return;
      event.preventDefault();
      if (state.menuFor !== entry) openMenu(entry, event.clientX, event.clientY);
    });
    ui.list.addEventListener("pointerdown", (event) => {
      if (event.pointerType !== "touch" || event.target.closest("button")) return;
      const entry = entryAt(event.target);
      if (!entry) return;
      release();
      const at = { x: event.clientX, y: event.clientY };
      press = { at, timer: setTimeout(() => openMenu(entry, at.x, at.y), LONG_PRESS_MS) };
    });
    ui.list.addEventListener("pointermove", (event) => {
      if (press && Math.hypot(event.clientX - press.at.x, event.clientY - press.at.y) > LONG_PRESS_SLOP_PX) release();
    });
    for (const type of ["pointerup", "pointercancel"]) ui.list.addEventListener(type, release);
    ui.list.addEventListener("click", (event) => {
      const chip = event.target.closest(".chip");
      const quote = event.target.closest(".quote");
      const entry = entryAt(event.target);
      if (chip && entry) react(entry, chip.dataset.emoji);
      else if (quote) showQuoted(quote.dataset.replyTo);
    });
    // Outside the menu: a press closes it (not a click: the finger that opened it lifts after).
    ui.menuLayer.addEventListener("pointerdown", (event) => {
      if (!ui.menu.contains(event.target)) closeMenu();
    });
    ui.menuLayer.addEventListener("contextmenu", (event) => event.preventDefault());
    document.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      if (state.menuFor) closeMenu();
      else if (state.bar) closeBar();
    });
    ui.scroller.addEventListener("scroll", release, { passive: true });
    window.addEventListener("resize", closeMenu);
    ui.barClose.title = T.closeBar;
    ui.barClose.setAttribute("aria-label", T.closeBar);
    ui.barClose.addEventListener("click", () => {
      closeBar();
      ui.input.focus();
    });
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
      const bar = state.bar;
      if (bar && bar.mode === "edit") {
        closeBar(); // the draft comes back
        if (text !== bar.entry.m.content) change("edit", { messageId: bar.entry.m.id, content: text });
        ui.input.focus();
        return;
      }
      closeBar();
      ui.input.value = "";
      autosize();
      typingStopped();
      sendText(text, bar ? bar.entry : null);
      ui.input.focus();
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
      if (state.bar && state.bar.mode === "edit") return; // an edit is not typing a message
      if (ui.input.value.trim()) typingStarted();
      else typingStopped();
    });
    ui.input.addEventListener("blur", typingStopped);
    ui.attach.addEventListener("click", () => ui.file.click());
    ui.file.accept = IeumMedia.ACCEPT;
    ui.file.addEventListener("change", () => {
      const reply = state.bar && state.bar.mode === "reply" ? state.bar.entry : null;
      if (reply) closeBar();
      for (const file of ui.file.files) sendMedia(file, reply);
      ui.file.value = "";
    });
    ui.record.hidden = !IeumMedia.canRecord();
    showRecording(false);
    ui.record.addEventListener("click", toggleRecording);
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
    bindMessages();
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
    setupPush().catch((err) => reportPush("failed", err.message));
  }

  start();
})();
