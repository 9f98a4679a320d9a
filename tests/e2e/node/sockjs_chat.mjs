// Two members of a couple chat through @stomp/stompjs 7 over sockjs-client 1.6, on one
// SockJS transport, with the token in the URL's query string or in the CONNECT headers.
// Usage: node sockjs_chat.mjs HTTP_URL TRANSPORT (query|connect) COUPLE_ID TOKEN_A TOKEN_B
// Prints one JSON object describing what each client saw; exits 1 on an error or a timeout.
import { Client } from "@stomp/stompjs";
import SockJS from "sockjs-client";

const [url, transport, via, couple, ta, tb] = process.argv.slice(2);
const topic = `/topic/couple/${couple}`;
const BURST = 36;
const run = `${transport}-${via}-${Math.random().toString(36).slice(2, 8)}`;
const deadline = setTimeout(() => { console.error("timeout"); process.exit(1); }, 20000);

function connect(token, name) {
  return new Promise((resolve, reject) => {
    const seen = { messages: [], errors: [] };
    const target = via === "query" ? `${url}?token=${encodeURIComponent(token)}` : url;
    const client = new Client({
      webSocketFactory: () => new SockJS(target, null, { transports: [transport] }),
      connectHeaders: via === "connect" ? { Authorization: `Bearer ${token}` } : {},
      reconnectDelay: 0,
      heartbeatIncoming: 10000,
      heartbeatOutgoing: 10000,
      onConnect: (frame) => {
        seen.version = frame.headers.version;
        seen.transport = client.webSocket.transport;
        client.subscribe("/user/queue/errors", (m) => seen.errors.push(JSON.parse(m.body)));
        // Polling transports carry the SUBSCRIBE in a request of its own: wait for its
        // RECEIPT, so the partner's first message cannot overtake it.
        const receipt = `sub-${name}-${run}`;
        client.watchForReceipt(receipt, () => resolve({ client, seen }));
        client.subscribe(topic, (m) => seen.messages.push(JSON.parse(m.body)), { receipt });
      },
      onStompError: (frame) => reject(new Error(`${name}: STOMP ERROR ${frame.headers.message}`)),
      onWebSocketClose: (event) => reject(new Error(`${name}: closed ${event.code} ${event.reason}`)),
    });
    client.activate();
  });
}

const waitFor = async (pred, what) => {
  for (let i = 0; i < 400; i++) { if (pred()) return; await new Promise((r) => setTimeout(r, 25)); }
  throw new Error(`waited too long for ${what}`);
};

function sendWithReceipt(client, destination, body) {
  return new Promise((resolve) => {
    const receipt = `r-${Math.random().toString(36).slice(2)}`;
    client.watchForReceipt(receipt, resolve);
    client.publish({ destination, body: JSON.stringify(body), headers: { receipt } });
  });
}

const clients = {};
try {
  const a = await connect(ta, "a");
  const b = await connect(tb, "b");
  clients.a = a.seen; clients.b = b.seen;
  await sendWithReceipt(a.client, `/app/chat/${couple}`, { type: "TEXT", content: "안녕하세요! \u2028 </script>", tempId: `sj-a-${run}` });
  await waitFor(() => b.seen.messages.some((m) => m.tempId === `sj-a-${run}`), "B to receive A's message");
  await sendWithReceipt(b.client, `/app/chat/${couple}`, { type: "STICKER", content: "heart-01", tempId: `sj-b-${run}` });
  await waitFor(() => a.seen.messages.some((m) => m.tempId === `sj-b-${run}`), "A to receive B's sticker");
  // A burst bigger than one streaming response (128 KiB): the client opens the next stream.
  // (Under the per-user burst limit of 40 messages.)
  const big = "x".repeat(3900);
  for (let i = 0; i < BURST; i++) {
    a.client.publish({ destination: `/app/chat/${couple}`, body: JSON.stringify({ type: "TEXT", content: big, tempId: `sj-burst-${run}-${i}` }) });
  }
  await waitFor(() => b.seen.messages.filter((m) => (m.tempId || "").startsWith(`sj-burst-${run}-`)).length === BURST, "B to receive the burst");
  // Long contents are reported by length, to keep the output small.
  const brief = (m) => (m.content && m.content.length > 100 ? { ...m, content: m.content.length } : m);
  const result = {};
  for (const [key, x] of Object.entries({ a, b })) result[key] = { ...x.seen, messages: x.seen.messages.map(brief) };
  for (const x of [a, b]) await x.client.deactivate();
  clearTimeout(deadline);
  process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(0));
} catch (err) {
  console.error(String(err && err.stack || err));
  console.error(JSON.stringify(clients).slice(0, 2000));
  process.exit(1);
}
