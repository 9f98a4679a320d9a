// Media on the demo page (/demo) in headless Chromium, both members of a couple: A sends a
// photo, records a voice note (Chromium's fake microphone), sends a video and a document; each
// appears on B's page as it should (the photo's thumbnail linking the image, a player with the
// note's duration that B plays, the video's poster, the document's chip), and uploads the
// server refuses leave a failed bubble with a line saying why.
//
// Usage: node demo_media.mjs CONFIG_JSON
//   CONFIG_JSON: {"baseUrl", "tokenA", "tokenB", "roomId", "artifacts", "chromium", "image",
//                 "video", "document", "tooLarge", "overQuota", "voiceMs"}: the paths of the
//                 files to send (tooLarge: over the server's limit for its kind; overQuota:
//                 within it, over the couple's bytes of the day); voiceMs: how long to record.
// Protocol with the caller: see demo_run.mjs (this driver asks nothing of it).
import { Run, connected, waitFor } from "./demo_run.mjs";

const config = JSON.parse(process.argv[2]);
const { baseUrl, tokenA, tokenB, artifacts } = config;
const run = new Run({ artifacts, timeoutMs: 100000 });

const CHROMIUM_MEDIA = [
  "--use-fake-device-for-media-stream", // a microphone that plays a beep
  "--use-fake-ui-for-media-stream", // and nobody to ask for it
  "--autoplay-policy=no-user-gesture-required", // B's page plays without a real click
];

async function openMember(who, token, locale) {
  const context = await run.browser.newContext({
    viewport: { width: 390, height: 780 },
    locale,
    permissions: ["microphone"],
  });
  const page = run.watch(who, await context.newPage());
  await page.goto(`${baseUrl}/demo?token=${encodeURIComponent(token)}`);
  await connected(page);
  return page;
}

// The stored (seq) bubble of this type, its state "sent".
const storedOfType = (page, type) =>
  waitFor(
    page,
    (t) => [...document.querySelectorAll(`#messages li.msg[data-seq][data-type="${t}"]`)].some(
      (li) => li.dataset.state === "sent"),
    type,
  );

// What every media bubble on a page shows.
const mediaOf = (page) =>
  page.evaluate(() =>
    [...document.querySelectorAll("#messages li.msg")]
      .filter((li) => li.querySelector(".bubble.media") || li.dataset.uploadError)
      .map((li) => {
        const img = li.querySelector(".bubble img");
        const link = li.querySelector(".bubble a.media-link");
        const audio = li.querySelector(".bubble audio");
        const video = li.querySelector(".bubble video");
        const chip = li.querySelector(".bubble .file-chip");
        const duration = li.querySelector(".duration");
        const error = li.querySelector(".upload-error");
        return {
          seq: li.dataset.seq ? Number(li.dataset.seq) : null,
          type: li.dataset.type,
          state: li.dataset.state,
          mine: li.classList.contains("mine"),
          retry: Boolean(li.querySelector("button.retry")),
          uploadError: li.dataset.uploadError || null,
          errorLine: error ? error.textContent : null,
          image: img ? { src: img.src, width: img.naturalWidth, complete: img.complete } : null,
          link: link ? { href: link.href, target: link.target } : null,
          audio: audio ? { src: audio.src, controls: audio.controls } : null,
          video: video
            ? { src: video.src, poster: video.poster, preload: video.preload, controls: video.controls }
            : null,
          file: chip
            ? {
              href: chip.getAttribute("href"),
              download: chip.getAttribute("download"),
              name: chip.querySelector(".file-name").textContent,
              size: chip.querySelector(".file-size").textContent,
            }
            : null,
          duration: duration ? duration.textContent : null,
        };
      }));

try {
  const browser = await run.launch(config.chromium, CHROMIUM_MEDIA);
  const result = { browser: browser.version() };
  let a;
  let b;

  await run.step("both members open the page", async () => {
    a = await openMember("a", tokenA, "ko-KR");
    b = await openMember("b", tokenB, "en-US");
    result.recordShown = await a.evaluate(() => !document.getElementById("record").hidden);
    result.accept = await a.evaluate(() => document.getElementById("file").accept);
  });

  await run.step("A sends a photo: B sees its thumbnail, linking the image", async () => {
    await a.setInputFiles("#file", config.image);
    await storedOfType(a, "IMAGE");
    await storedOfType(b, "IMAGE");
    await waitFor(b, () => [...document.querySelectorAll('#messages li.msg[data-type="IMAGE"] img')].some(
      (img) => img.complete && img.naturalWidth > 0));
    await run.shot("01-photo");
  });

  await run.step("A records a voice note: B sees its duration", async () => {
    await a.click("#record");
    await waitFor(a, () => document.getElementById("record").dataset.recording === "true");
    await a.waitForTimeout(config.voiceMs); // the length of the note, not a wait for a result
    await a.click("#record");
    await storedOfType(a, "AUDIO");
    await storedOfType(b, "AUDIO");
    await waitFor(b, () => {
      const d = document.querySelector('#messages li.msg[data-seq][data-type="AUDIO"] .duration');
      return d && /^\d+:\d\d$/.test(d.textContent);
    });
    await run.shot("02-voice");
  });

  await run.step("B plays the voice note", async () => {
    result.playError = await b.evaluate(async () => {
      const audio = document.querySelector('#messages li.msg[data-seq][data-type="AUDIO"] audio');
      window.voicePlayed = { ended: false, time: 0 };
      audio.addEventListener("timeupdate", () => { window.voicePlayed.time = audio.currentTime; });
      audio.addEventListener("ended", () => { window.voicePlayed.ended = true; });
      try {
        await audio.play();
        return null;
      } catch (err) {
        return String(err);
      }
    });
    await waitFor(b, () => window.voicePlayed.ended || window.voicePlayed.time > 0.2);
    result.played = await b.evaluate(() => window.voicePlayed);
    result.playedDuration = await b.evaluate(
      () => document.querySelector('#messages li.msg[data-seq][data-type="AUDIO"] audio').duration);
    await run.shot("03-played");
  });

  await run.step("A sends a video and a document: B sees the poster and the chip", async () => {
    await a.setInputFiles("#file", [config.video, config.document]);
    for (const page of [a, b]) {
      await storedOfType(page, "VIDEO");
      await storedOfType(page, "FILE");
    }
    await waitFor(b, () => {
      const d = document.querySelector('#messages li.msg[data-seq][data-type="VIDEO"] .duration');
      return d && /^\d+:\d\d$/.test(d.textContent);
    });
    await run.shot("04-video-and-document");
  });

  await run.step("refused uploads fail their bubble with a line saying why", async () => {
    const refused = (code) =>
      waitFor(a, (c) => [...document.querySelectorAll("#messages li.msg")].some(
        (li) => li.dataset.uploadError === c && li.dataset.state === "failed"), code);
    await a.setInputFiles("#file", config.tooLarge);
    await refused("PAYLOAD_TOO_LARGE");
    await a.setInputFiles("#file", { name: "broken.png", mimeType: "image/png", buffer: Buffer.from("not a picture") });
    await refused("UNSUPPORTED_MEDIA_TYPE");
    await a.setInputFiles("#file", config.overQuota);
    await refused("QUOTA_EXCEEDED");
    await run.shot("05-refused");
  });

  await run.step("report", async () => {
    for (const [who, page] of Object.entries(run.pages)) {
      result[who] = { media: await mediaOf(page), problems: page.problems };
    }
  });
  await run.finish(result);
} catch (err) {
  await run.fail(err);
}
