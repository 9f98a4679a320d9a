/* The ieum-chat demo page: one member of a couple, in a browser.
 *
 * Open it as /demo?token=JWT (the URL `ieum-chat demo` prints). Optional parameters:
 *   transport=xhr-streaming  SockJS with only that transport (any SockJS transport name)
 *   lang=ko|en               the interface language (default: the browser's)
 *
 * The chat itself is the @ieum/chat SDK's browser bundle (window.IeumChat): its ChatClient
 * connects (STOMP over a raw WebSocket at /ws/chat, or over SockJS when WebSocket is
 * unavailable or blocked), reconnects with backoff, resumes the couple's stream after the last
 * seq seen, delivers each entry once, and keeps the outbox (every message and change, under a
 * tempId, until its RECEIPT) in IndexedDB, so that what was sent while the server was away
 * survives a reload and goes out once when it is back. Its ChatApi makes the REST calls: the
 * room, the history (newest first, scrolled back by the seq cursor), uploads, push devices.
 * This page renders what they deliver and handles the member's input.
 *
 * Media (media.js): the attach button takes a picture, a sound, a video or a document (the
 * message type follows the file's type: IMAGE, AUDIO, VIDEO, FILE), the microphone button
 * records a voice note (press to start, press again to send); each is uploaded (ChatApi.upload:
 * ticket, PUT or form POST, completion), then sent with the upload's mediaUrl. A refused upload
 * (413 too large, 415 not a type the server takes, 429 the couple's bytes of the day) fails its
 * bubble with a line saying why.
 *
 * A message changes after it is sent: a long press (touch) or a right click (mouse) on a bubble
 * opens its menu: react, reply (the message sent next carries replyTo), edit (my own text),
 * unsend (my own: a tombstone for both) and delete for me (gone from my devices only). Each
 * change is an event in the couple's stream (MESSAGE_EDITED, MESSAGE_UNSENT, REACTION,
 * READ_RECEIPT), numbered by the same seq as the messages, so message seqs may skip.
 *
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
      libs: "`make demo`(SDK 빌드와 web/에서 npm ci)로 설치한 뒤 새로고침해 주세요.",
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
      libs: "Install them with `make demo` (the SDK's build, npm ci in web/), then reload.",
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
  // SockJS transports that need no other site. The iframe-* ones load the server's iframe
  // page, which loads sockjs-client from IEUM_SOCKJS_CLIENT_URL (a CDN by default): where that
  // site cannot be reached they fail with "SockJS is not defined" inside the frame.
  const SOCKJS_TRANSPORTS = [
    "websocket", "xhr-streaming", "xdr-streaming", "eventsource", "htmlfile",
    "xhr-polling", "xdr-polling", "jsonp-polling",
  ];
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
    // The stream position shown: the highest seq of the couple's stream delivered (a message,
    // a change or the stand-in of a message I deleted). The client resumes after it.
    lastSeq: 0,
    gaps: 0, // seqs the stream skipped (the server promises none)
    oldestSeq: null, // the history cursor
    hasMore: false,
    loadingOlder: false,
    bySeq: new Map(), // seq -> {el, m}
    byId: new Map(), // message id -> the same entries
    deleted: new Set(), // ids of messages I deleted for me: never shown again
    outbox: new Map(), // tempId -> {request, el, status, file, reply, localUrl}: bubbles not stored yet
    restored: new Map(), // tempId -> kind: changes found in the outbox at load (a reload's)
    menuFor: null, // the entry whose menu is open
    bar: null, // {mode: "reply"|"edit", entry, draft}: the bar above the composer
    unreadQueued: false,
    api: null, // IeumChat.ChatApi
    client: null, // IeumChat.ChatClient
    connected: false,
    everConnected: false,
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

  // What went wrong, as the server said it: Korean (message) or English (detail). An
  // HttpError carries the server's JSON; a SendError the error payload.
  function said(err) {
    const body = err && (err.payload || err.body);
    if (body && typeof body === "object") {
      const text = lang === "ko" ? body.message || body.detail : body.detail || body.message;
      if (text) return text;
    }
    return (err && (err.detail || err.message)) || T.error;
  }

  // A refusal no retry changes (a REST answer of 4xx): as opposed to a server not up yet.
  function refused(err) {
    return Boolean(err && typeof err.status === "number" && err.status >= 400 && err.status < 500);
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
    if (state.client) state.client.stop().catch(() => {});
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

  function updateOlderButton() {
    ui.older.hidden = !state.hasMore;
    ui.older.textContent = state.loadingOlder ? T.loadingOlder : T.older;
  }

  // The newest page, before the client starts: its messages are as they are now, so the
  // stream resumes after the newest of them (the changes since are replayed, harmlessly again).
  async function loadLatest() {
    const page = await state.api.historyPage(state.roomId, { limit: PAGE_SIZE });
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
      const page = await state.api.historyPage(state.roomId, { before: state.oldestSeq, limit: PAGE_SIZE });
      const s = ui.scroller;
      const fromBottom = s.scrollHeight - s.scrollTop;
      for (const m of page.messages) addMessage(m);
      s.scrollTop = s.scrollHeight - fromBottom; // keep the reader where they were
      state.hasMore = page.hasMore;
    } catch (err) {
      toast(`${T.error}: ${said(err)}`);
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

  // Best effort over the connection; missed ones are marked on the next connect.
  function markRead() {
    if (document.visibilityState !== "visible" || !state.connected) return;
    let upTo = 0;
    for (const [seq, entry] of state.bySeq) {
      if (!isMine(entry.m) && !entry.m.isRead && seq > upTo) upTo = seq;
    }
    if (upTo === 0 || upTo <= state.readSent) return;
    state.readSent = upTo;
    state.client.markRead({ upToSeq: upTo });
  }

  // -- sending ---------------------------------------------------------------------------------

  // A bubble waiting for the server: below every stored message until it has a seq.
  // `file`: a media message's file (a File or a recorded Blob), until it is uploaded;
  // `localUrl`: the object URL its bubble shows meanwhile.
  function enqueue(request, li, file, reply, localUrl) {
    const item = { request, el: li, status: "sending", tempId: null, file, reply, localUrl };
    setStatus(li, "sending");
    ui.list.append(li);
    scrollToBottom();
    return item;
  }

  function track(item, tempId) {
    if (item.tempId) state.outbox.delete(item.tempId);
    item.tempId = tempId;
    item.el.dataset.tempId = tempId;
    state.outbox.set(tempId, item);
  }

  // Into the SDK's outbox (stored in IndexedDB before it is written to the socket; re-sent
  // under the same tempId after each reconnect and reload until the server has it).
  function transmit(item) {
    track(item, newTempId());
    const tempId = item.tempId;
    state.client.send({ ...item.request, tempId }).then(
      (m) => {
        if (m && state.outbox.get(tempId) === item) addMessage(m);
      },
      (err) => {
        if (state.outbox.get(tempId) === item && err.code !== "CLIENT_CLOSED") failMessage(item, err);
      },
    );
  }

  function failMessage(item, err) {
    if (item.status === "failed") return;
    item.status = "failed";
    setStatus(item.el, "failed");
    if (err && err.code === "RATE_LIMITED") toast(T.rateLimited);
    else if (err) toast(said(err));
  }

  function retryMessage(tempId) {
    const item = state.outbox.get(tempId);
    if (!item || item.status !== "failed") return;
    item.status = "sending";
    setStatus(item.el, "sending");
    showUploadError(item.el, null);
    if (item.file) upload(item);
    else transmit(item);
  }

  // `replyTo`: the entry of the message answered, or null.
  function sendText(text, replyTo) {
    const request = { type: "TEXT", content: text };
    const reply = replyTo ? quoteOf(replyTo.m) : null;
    if (reply) request.replyTo = reply.messageId;
    const li = renderBubble({ ...request, senderId: state.me, replyTo: reply });
    transmit(enqueue(request, li, null, reply));
  }

  // A chosen file or a recorded voice note: its bubble at once (the local file in it), then the
  // upload, then the send. `extra`: what the page knows better than the file (a recording's
  // duration).
  function sendMedia(file, replyTo, extra) {
    const type = IeumMedia.kindOf(file);
    const request = { type, ...(extra || {}) };
    const reply = replyTo ? quoteOf(replyTo.m) : null;
    if (reply) request.replyTo = reply.messageId;
    const localUrl = URL.createObjectURL(file);
    const shown = { ...request, senderId: state.me, replyTo: reply, size: file.size };
    if (type === "FILE") shown.fileName = file.name;
    const li = renderBubble(shown, localUrl);
    const item = enqueue(request, li, file, reply, localUrl);
    track(item, newTempId()); // the page's name for it until the upload is done
    upload(item);
  }

  // Messages of a reload: what the outbox still held, shown as being sent (the client sends
  // them again when it connects); the changes are only remembered, to say if one fails.
  function showRestored(pending) {
    for (const p of pending) {
      if (p.kind !== "message") {
        state.restored.set(p.tempId, p.kind);
        continue;
      }
      const body = p.body || {};
      const quoted = typeof body.replyTo === "string" ? state.byId.get(body.replyTo) : null;
      const reply = quoted ? quoteOf(quoted.m) : null;
      const li = renderBubble({ ...body, senderId: state.me, replyTo: reply });
      const request = { ...body };
      delete request.tempId;
      const item = enqueue(request, li, null, reply, null);
      track(item, p.tempId);
    }
  }

  // A change of a sent message (edit, unsend, delete, react), through the same outbox. Its
  // effect shows when its event comes back in the stream; a refusal says which kind failed.
  function change(kind, run) {
    run().catch((err) => {
      if (err && err.code !== "CLIENT_CLOSED") actionFailed(kind, err);
    });
  }

  function actionFailed(kind, err) {
    if (err.code === "RATE_LIMITED") toast(T.rateLimited);
    else toast(`${T.actionFailed[kind]}: ${said(err)}`);
  }

  function react(entry, emoji) {
    const reaction = (entry.m.reactions || []).find((r) => r.emoji === emoji);
    const mine = Boolean(reaction && reaction.userIds.includes(state.me));
    change("react", () => state.client.react(entry.m.id, emoji, mine ? "remove" : "add"));
  }

  // The presigned upload (ChatApi.upload), then the send: an IMAGE names its imageUrl, the
  // others their mediaUrl (the server adds what it learnt of the file).
  async function upload(item) {
    const file = item.file;
    const contentType = IeumMedia.contentTypeOf(file);
    const options = { contentType };
    if (item.request.type === "FILE" && file.name) options.fileName = file.name;
    try {
      const result = await state.api.upload(state.roomId, file, options);
      if (item.request.type === "IMAGE") item.request.imageUrl = result.imageUrl || result.mediaUrl;
      else item.request.mediaUrl = result.mediaUrl;
      item.file = null;
      transmit(item);
    } catch (err) {
      failMessage(item, null);
      showUploadError(item.el, err);
      toast(uploadErrorText(err));
    }
  }

  function uploadCode(err) {
    if (err.code === "EntityTooLarge") return "PAYLOAD_TOO_LARGE"; // object storage's word
    if (err.code && err.code !== "UNEXPECTED") return err.code;
    return String(err.status || "network");
  }

  function uploadErrorText(err) {
    const headline = T.uploadRefused[uploadCode(err)] || T.uploadFailed;
    const text = said(err);
    return text && text !== headline ? `${headline}: ${text}` : headline;
  }

  // The line under a bubble whose upload was refused (null: none).
  function showUploadError(li, err) {
    let line = li.querySelector(".upload-error");
    if (!err) {
      delete li.dataset.uploadError;
      if (line) line.remove();
      return;
    }
    li.dataset.uploadError = uploadCode(err);
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
    if (!state.connected) return;
    state.client.typing(typing);
    state.typingSent = typing;
    state.typingAt = Date.now();
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

  // -- what the client delivers ----------------------------------------------------------------

  function setPosition(seq) {
    state.lastSeq = seq;
    ui.body.dataset.seq = String(seq);
  }

  // Every entry of the stream moves the position (the client delivers each seq once, in order).
  function advance(ev) {
    const seq = ev && ev.seq;
    if (typeof seq !== "number" || seq <= state.lastSeq) return;
    if (seq !== state.lastSeq + 1) {
      state.gaps += 1;
      ui.body.dataset.gaps = String(state.gaps);
    }
    setPosition(seq);
  }

  function onStreamMessage(m) {
    advance(m);
    if (isPartnerMessage(m)) notifyIfHidden(m);
    addMessage(m);
  }

  // An outbox entry acknowledged: a message is stored (its broadcast shows it, else this).
  function onSent(ev) {
    state.restored.delete(ev.tempId);
    const item = state.outbox.get(ev.tempId);
    if (!item) return;
    if (ev.message) addMessage(ev.message);
    else setStatus(item.el, "sent");
  }

  // A refusal of an entry the reload brought back (this page's own sends learn it from
  // their promise).
  function onFailed(err) {
    const kind = state.restored.get(err.tempId);
    if (kind) {
      state.restored.delete(err.tempId);
      actionFailed(kind, err);
      return;
    }
    const item = state.outbox.get(err.tempId);
    if (item) failMessage(item, err);
  }

  // Any other error: the session's end for good, or a word in the toast. An ERROR frame that
  // is not the end (SERVER_SHUTDOWN, a slow consumer) only means a reconnect.
  function onError(payload) {
    const code = payload.code || "";
    if (FATAL_CODES.has(code)) return showFatal(T.authTitle, T.auth);
    const ended = ENDED_CODES[code];
    if (ended) return showFatal(T[`${ended}Title`], T[ended]);
    if (payload.fatal) return;
    if (code === "RATE_LIMITED") toast(T.rateLimited);
    else toast(`${payload.message || T.error}${payload.detail ? ` (${payload.detail})` : ""}`);
  }

  function onSystem(ev) {
    advance(ev);
    const ended = ENDED_CODES[ev.event];
    if (ended) showFatal(T[`${ended}Title`], T[ended]);
  }

  // The SockJS transport the connection settled on (xhr-streaming, ...), "?" until known.
  function sockjsTransport() {
    return (state.client && state.client.sockjsTransport) || "?";
  }

  function onState(ev) {
    if (state.fatal) return;
    if (ev.state === "connected") {
      state.connected = true;
      state.everConnected = true;
      state.readSent = 0;
      state.typingSent = false;
      setTransport(ev.transport === "sockjs" ? `sockjs/${sockjsTransport()}` : ev.transport);
      hideBanner();
      setConn("connected");
      // Presence is not replayed: now that the stream is subscribed, ask for it.
      refreshRoom().catch(() => {});
      markReadSoon();
    } else if (ev.state === "connecting" || ev.state === "reconnecting") {
      if (state.connected) setPresenceUnknown();
      state.connected = false;
      setConn(state.everConnected ? "reconnecting" : "connecting");
      showBanner(state.everConnected ? T.reconnecting : T.connecting);
    }
  }

  function bindClient(client) {
    client.on("state", onState);
    client.on("message", onStreamMessage);
    client.on("edited", (ev) => (advance(ev), onEdited(ev)));
    client.on("unsent", (ev) => (advance(ev), onUnsent(ev)));
    client.on("reaction", (ev) => (advance(ev), onReaction(ev)));
    client.on("deleted", (ev) => (advance(ev), onDeleted(ev)));
    client.on("read", (ev) => (advance(ev), onReadReceipt(ev)));
    client.on("typing", (ev) => {
      if (ev.userId === state.partner.id) setPartnerTyping(ev.typing);
    });
    client.on("presence", (ev) => {
      if (ev.userId === state.partner.id) setOnline(ev.online);
    });
    client.on("system", onSystem);
    client.on("sent", onSent);
    client.on("failed", onFailed);
    client.on("error", onError);
  }

  function showRoom(room) {
    state.roomId = room.id;
    const p = room.partner || {};
    state.partner = { id: p.id || null, name: p.name || "", profileImage: p.profileImage || null, online: Boolean(p.online) };
    renderPartner();
  }

  async function refreshRoom() {
    const room = await state.api.room();
    rememberRoom(room);
    showRoom(room);
  }

  // The room as last seen in this browser: with the server away, a reload still shows the
  // chat and what is waiting to be sent.
  const roomKey = () => `ieum-chat.room.${state.me}`;

  function rememberRoom(room) {
    try {
      localStorage.setItem(roomKey(), JSON.stringify({ id: room.id, partner: room.partner }));
    } catch (_) {
      // not kept: a reload needs the server
    }
  }

  function rememberedRoom() {
    try {
      const room = JSON.parse(localStorage.getItem(roomKey()) || "null");
      return room && typeof room.id === "string" ? room : null;
    } catch (_) {
      return null;
    }
  }

  // -- notifications ---------------------------------------------------------------------------

  const pushReady = typeof IeumPush === "object";

  function isPartnerMessage(m) {
    return typeof m.id === "string" && m.senderId === state.partner.id && !m.unsent;
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
      state.pushPreview = (await state.api.settings()).pushPreview !== false;
    } catch (_) {
      // the default: previews on
    }
    await IeumPush.setup({
      fetchKey: () => state.api.vapidKey(),
      register: (deviceId, body) => state.api.registerDevice(deviceId, body),
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
      if (mine) items.push(["unsend", () => change("unsend", () => state.client.unsend(m.id))]);
    }
    items.push(["delete", () => change("delete", () => state.client.deleteForMe(m.id))]);
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
        if (text !== bar.entry.m.content) change("edit", () => state.client.edit(bar.entry.m.id, text));
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

  // Until `load` succeeds: the server may not be up (yet). A refusal (401, 404) is final.
  async function untilUp(load) {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await load();
      } catch (err) {
        if (refused(err)) throw err;
        await sleep(Math.min(500 * 2 ** attempt, 4000));
      }
    }
  }

  function startFailed(err) {
    if (state.fatal) return;
    const code = err && err.code;
    if (code === "NOT_FOUND") return showFatal(T.noRoomTitle, T.noRoom);
    const ended = ENDED_CODES[code];
    if (ended) return showFatal(T[`${ended}Title`], T[ended]);
    if (err && (err.status === 401 || FATAL_CODES.has(code))) return showFatal(T.authTitle, T.auth);
    showFatal(T.error, said(err));
  }

  async function start() {
    document.documentElement.lang = lang;
    bindComposer();
    bindMessages();
    if (!token) return showFatal(T.noTokenTitle, T.noToken);
    if (typeof IeumChat !== "object") return showFatal(T.libsTitle, T.libs);
    state.me = tokenSubject(token);
    setConn("connecting");
    showBanner(T.connecting);
    const deviceId = pushReady ? IeumPush.deviceId() : undefined;
    const tokenProvider = () => token;
    state.api = new IeumChat.ChatApi({ baseUrl: location.origin, token: tokenProvider, deviceId });
    try {
      // The room: from the server, or as this browser last saw it when the server is away.
      let remembered = false;
      const room = await untilUp(async () => {
        try {
          const fresh = await state.api.room();
          rememberRoom(fresh);
          return fresh;
        } catch (err) {
          const known = refused(err) ? null : rememberedRoom();
          if (!known) throw err;
          remembered = true;
          return known;
        }
      });
      showRoom(room);
      if (remembered) setPresenceUnknown(); // not known until connected
      // One database per member: two members in one browser keep their outboxes apart.
      const storage = new IeumChat.IndexedDbStorage(`ieum-chat.${state.me}`);
      const sockjs = Boolean(forcedTransport) || typeof WebSocket !== "function";
      const client = new IeumChat.ChatClient({
        baseUrl: location.origin,
        token: tokenProvider,
        coupleId: room.id,
        deviceId,
        storage,
        transport: sockjs ? "sockjs" : "auto",
        sockjsTransports: forcedTransport ? [forcedTransport] : SOCKJS_TRANSPORTS,
        backoff: { initialMs: 500, maxMs: 4000 },
      });
      state.client = client;
      bindClient(client);
      // What a previous visit left unsent, before anything else: it goes out once connected.
      showRestored(await client.pending());
      await untilUp(loadLatest);
      // The stream resumes after what the history shows, or after what this browser saw last.
      const seen = await storage.getLastSeq(room.id);
      if (seen === null || seen < state.lastSeq) await storage.setLastSeq(room.id, state.lastSeq);
      else setPosition(seen);
      if (state.fatal) return;
      client.start().catch(startFailed);
    } catch (err) {
      return startFailed(err);
    }
    setupPush().catch((err) => reportPush("failed", err.message));
  }

  start();
})();
