/* The demo page's media: window.IeumMedia, used by app.js.
 *
 * kindOf(file) / contentTypeOf(file): which message a chosen file becomes (IMAGE, AUDIO, VIDEO
 * or FILE, by its type) and the type it is declared as.
 *
 * The upload itself is the SDK's (ChatApi.upload: the ticket, the bytes, the completion).
 *
 * recordVoice(): a voice note from the microphone (MediaRecorder, audio/webm or audio/mp4,
 * whichever the browser records); resolves to a recording with stop() -> {blob, contentType,
 * durationMs} and cancel().
 *
 * render(bubble, m, texts, localUrl): the bubble of a media message: an IMAGE's thumbnail (or
 * the image) linking the full image; an AUDIO player and its duration (m:ss); a VIDEO player
 * that loads nothing until played, its thumbnail as the poster; a FILE chip (name, size) that
 * downloads it. localUrl: the file being uploaded, shown meanwhile.
 */
(function () {
  "use strict";

  const IMAGE_TYPES = new Set(["image/jpeg", "image/png", "image/gif", "image/webp"]);
  // Browsers leave the type empty for what they do not know (Hangul documents, often): the
  // server's names for the documents it takes, by extension.
  const DOCUMENT_TYPES = {
    pdf: "application/pdf",
    zip: "application/zip",
    txt: "text/plain",
    doc: "application/msword",
    docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    xls: "application/vnd.ms-excel",
    xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ppt: "application/vnd.ms-powerpoint",
    pptx: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    hwp: "application/x-hwp",
    hwpx: "application/hwp+zip",
  };
  // What the file picker offers: the images the server takes (a phone converts the others,
  // HEIC, to JPEG for such a list), any sound or video, and the documents above.
  const ACCEPT = [
    ...IMAGE_TYPES,
    "audio/*",
    "video/*",
    ...Object.keys(DOCUMENT_TYPES).map((ext) => `.${ext}`),
  ].join(",");
  // Voice notes: Opus in WebM (Chromium, Firefox), else AAC in MP4 (Safari).
  const VOICE_TYPES = ["audio/webm;codecs=opus", "audio/webm", "audio/mp4"];
  const VOICE_MAX_MS = 5 * 60 * 1000;

  function baseType(type) {
    return String(type || "").split(";")[0].trim().toLowerCase();
  }

  function contentTypeOf(file) {
    const type = baseType(file.type);
    if (type) return type;
    const ext = (file.name || "").split(".").pop().toLowerCase();
    return DOCUMENT_TYPES[ext] || "application/octet-stream";
  }

  function kindOf(file) {
    const type = contentTypeOf(file);
    if (IMAGE_TYPES.has(type)) return "IMAGE";
    if (type.startsWith("audio/")) return "AUDIO";
    if (type.startsWith("video/")) return "VIDEO";
    return "FILE";
  }

  // -- voice notes -------------------------------------------------------------------------

  function canRecord() {
    return (
      typeof MediaRecorder === "function" &&
      Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia) &&
      VOICE_TYPES.some((type) => MediaRecorder.isTypeSupported(type))
    );
  }

  async function recordVoice() {
    const mimeType = VOICE_TYPES.find((type) => MediaRecorder.isTypeSupported(type));
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const release = () => stream.getTracks().forEach((track) => track.stop());
    let recorder;
    try {
      recorder = new MediaRecorder(stream, { mimeType });
    } catch (err) {
      release(); // the microphone's light goes off again
      throw err;
    }
    const chunks = [];
    recorder.addEventListener("dataavailable", (event) => {
      if (event.data && event.data.size) chunks.push(event.data);
    });
    const stopped = new Promise((resolve, reject) => {
      recorder.addEventListener("stop", resolve);
      recorder.addEventListener("error", (event) => reject(event.error || new Error("recording failed")));
    });
    await new Promise((resolve) => {
      recorder.addEventListener("start", resolve, { once: true });
      recorder.start();
    });
    const startedAt = performance.now();
    let endedAt = null;
    const end = () => {
      if (endedAt === null) endedAt = performance.now();
      if (recorder.state !== "inactive") recorder.stop();
    };
    const limit = setTimeout(end, VOICE_MAX_MS); // a note left running ends by itself
    let result = null;
    const finish = async () => {
      if (!result) {
        result = (async () => {
          end();
          const durationMs = Math.round(endedAt - startedAt);
          try {
            await stopped;
          } finally {
            clearTimeout(limit);
            release();
          }
          const contentType = baseType(recorder.mimeType || mimeType);
          return { blob: new Blob(chunks, { type: contentType }), contentType, durationMs };
        })();
      }
      return result;
    };
    return { stop: finish, cancel: () => finish().catch(() => null) };
  }

  // -- rendering ---------------------------------------------------------------------------

  function safeUrl(url) {
    return typeof url === "string" && /^(https?:|blob:)/i.test(url) ? url : null;
  }

  // 3250 -> "0:03", 61000 -> "1:01": whole seconds, as the players count them (their own
  // clock beside it agrees); a clip under a second is not "0:00".
  function formatDuration(ms) {
    if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) return "";
    const total = Math.max(ms > 0 ? 1 : 0, Math.floor(ms / 1000));
    return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
  }

  // 48213 -> "47.1 KB" (powers of 1024, as file managers show them).
  function humanSize(bytes) {
    if (typeof bytes !== "number" || !Number.isFinite(bytes) || bytes < 0) return "";
    const units = ["B", "KB", "MB", "GB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
  }

  function node(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text != null) el.textContent = text;
    return el;
  }

  function broken(bubble, texts) {
    if (!bubble.querySelector(".broken")) bubble.prepend(node("div", "caption broken", texts.imageBroken));
  }

  // The thumbnail first (small); when it cannot be shown, the image itself; then a word.
  function renderImage(bubble, m, texts, localUrl) {
    const full = safeUrl(m.mediaUrl) || safeUrl(m.imageUrl);
    const sources = [localUrl, safeUrl(m.thumbnailUrl), full].filter(Boolean);
    const img = node("img");
    img.alt = m.content || "image";
    img.decoding = "async";
    let next = 0;
    const load = () => {
      if (next < sources.length) img.src = sources[next++];
    };
    img.addEventListener("error", () => {
      if (next < sources.length) return load();
      img.hidden = true;
      broken(bubble, texts);
    });
    load();
    if (full && !localUrl) {
      const link = node("a", "media-link");
      link.href = full;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.append(img);
      bubble.append(link);
    } else {
      bubble.append(img);
    }
  }

  // The duration the server measured; when it did not say, the player's once it knows.
  function durationLabel(player, ms) {
    const label = node("span", "duration", formatDuration(ms));
    if (!label.textContent) {
      player.addEventListener("loadedmetadata", () => {
        if (Number.isFinite(player.duration)) label.textContent = formatDuration(player.duration * 1000);
      });
    }
    return label;
  }

  function renderAudio(bubble, m, texts, localUrl) {
    const audio = node("audio");
    audio.controls = true;
    audio.preload = "metadata";
    const src = localUrl || safeUrl(m.mediaUrl);
    if (src) audio.src = src;
    const row = node("div", "media-row");
    row.append(durationLabel(audio, m.durationMs));
    bubble.append(audio, row);
  }

  function renderVideo(bubble, m, texts, localUrl) {
    const video = node("video");
    video.controls = true;
    video.preload = "none";
    video.playsInline = true;
    const poster = safeUrl(m.thumbnailUrl);
    if (poster) video.poster = poster;
    const src = localUrl || safeUrl(m.mediaUrl);
    if (src) video.src = src;
    const row = node("div", "media-row");
    row.append(durationLabel(video, m.durationMs));
    bubble.append(video, row);
  }

  function renderFile(bubble, m, texts) {
    const href = safeUrl(m.mediaUrl);
    const chip = node(href ? "a" : "div", "file-chip");
    if (href) {
      chip.href = href;
      chip.download = m.fileName || "";
      chip.rel = "noopener noreferrer";
      chip.title = texts.download;
    }
    const info = node("span", "file-info");
    info.append(node("span", "file-name", m.fileName || texts.file), node("span", "file-size", humanSize(m.size)));
    // The extension on a sheet of paper (drawn in CSS: no emoji font needed).
    const name = m.fileName || "";
    const ext = name.includes(".") ? name.split(".").pop().slice(0, 4).toUpperCase() : "";
    chip.append(node("span", "file-icon", ext), info);
    bubble.append(chip);
  }

  const RENDER = { IMAGE: renderImage, AUDIO: renderAudio, VIDEO: renderVideo, FILE: renderFile };

  function isMedia(type) {
    return Object.hasOwn(RENDER, type);
  }

  function render(bubble, m, texts, localUrl) {
    bubble.classList.add("media", m.type.toLowerCase());
    RENDER[m.type](bubble, m, texts, localUrl || null);
    if (m.content) bubble.append(node("div", "caption", m.content));
  }

  window.IeumMedia = {
    ACCEPT,
    kindOf,
    contentTypeOf,
    canRecord,
    recordVoice,
    isMedia,
    render,
    formatDuration,
    humanSize,
  };
})();
