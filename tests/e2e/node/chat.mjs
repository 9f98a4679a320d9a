// Two members of a couple chat through @stomp/stompjs 7 over `ws`, and an outsider is refused.
// Usage: node chat.mjs URL COUPLE_ID TOKEN_A TOKEN_B TOKEN_OUTSIDER
// Prints one JSON object describing what each client saw; exits 1 on a timeout.
import { Client } from "@stomp/stompjs";
import WebSocket from "ws";

const [url, couple, ta, tb, tc] = process.argv.slice(2);
const topic = `/topic/couple/${couple}`;
const deadline = setTimeout(() => { console.error("timeout"); process.exit(1); }, 20000);

// A member waits for its topic SUBSCRIBE's RECEIPT, so that the partner's first message
// cannot overtake it (a subscription without x-resume-after-seq starts at the stream's
// position when the server takes it); the outsider's is refused, with no RECEIPT to wait for.
function connect(token, member = true) {
  return new Promise((resolve, reject) => {
    const seen = { messages: [], errors: [], receipts: [] };
    const client = new Client({
      webSocketFactory: () => new WebSocket(url, ["v10.stomp", "v11.stomp", "v12.stomp"]),
      connectHeaders: { Authorization: `Bearer ${token}` },
      reconnectDelay: 0,
      heartbeatIncoming: 10000,
      heartbeatOutgoing: 10000,
      onConnect: (frame) => {
        seen.version = frame.headers.version;
        client.subscribe("/user/queue/errors", (m) => seen.errors.push(JSON.parse(m.body)));
        const onMessage = (m) => seen.messages.push(JSON.parse(m.body));
        if (!member) {
          client.subscribe(topic, onMessage);
          resolve({ client, seen });
          return;
        }
        const receipt = `sub-${Math.random().toString(36).slice(2)}`;
        client.watchForReceipt(receipt, () => resolve({ client, seen }));
        client.subscribe(topic, onMessage, { receipt });
      },
      onStompError: (frame) => reject(new Error(frame.headers.message)),
      onWebSocketError: (e) => reject(e),
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

const a = await connect(ta);
const b = await connect(tb);
const result = { versions: [a.seen.version, b.seen.version] };

await sendWithReceipt(a.client, `/app/chat/${couple}`, { type: "TEXT", content: "안녕하세요!", tempId: "js-a-1" });
await waitFor(() => b.seen.messages.some((m) => m.tempId === "js-a-1"), "B to receive A's message");
await sendWithReceipt(b.client, `/app/chat/${couple}`, { type: "STICKER", content: "heart-01", tempId: "js-b-1" });
await waitFor(() => a.seen.messages.some((m) => m.tempId === "js-b-1"), "A to receive B's sticker");
const fromA = b.seen.messages.find((m) => m.tempId === "js-a-1");
await sendWithReceipt(b.client, `/app/chat/${couple}/read`, { messageIds: [fromA.id] });
await waitFor(() => a.seen.messages.some((m) => m.type === "READ_RECEIPT"), "A to see the read receipt");
b.client.publish({ destination: `/app/chat/${couple}/typing`, body: JSON.stringify({ typing: true }) });
await waitFor(() => b.seen.messages.some((m) => m.event === "TYPING") && a.seen.messages.some((m) => m.event === "TYPING"), "typing");

const c = await connect(tc, false);
c.client.publish({ destination: `/app/chat/${couple}`, body: JSON.stringify({ type: "TEXT", content: "intruder", tempId: "js-c-1" }) });
await waitFor(() => c.seen.errors.length >= 2, "the outsider's two UNAUTHORIZED errors");

result.a = a.seen; result.b = b.seen; result.c = c.seen;
for (const x of [a, b, c]) await x.client.deactivate();
clearTimeout(deadline);
console.log(JSON.stringify(result));
