package ieum.android;

import java.io.IOException;
import java.time.LocalDateTime;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.TypeAdapter;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;
import com.google.gson.stream.JsonWriter;

import okhttp3.MediaType;
import okhttp3.OkHttpClient;
import okhttp3.Request;
import okhttp3.RequestBody;
import okhttp3.Response;

/**
 * The wire sequence of the Android client guide (docs/android.md), against a running server:
 * CONNECT with the token and device id in STOMP headers, the errors queue and the couple's
 * topic (resuming after a seq, with a receipt), a SEND with a tempId and a receipt, the same
 * tempId again (stored once), the REST fallback and history, FCM registration, a non-member's
 * refusal, heart-beats both ways, a resume after a dropped connection with the outbox sent
 * again, and a token that expires. Every WebSocket message is read as StompProtocolAndroid
 * 1.6.6 reads it (see {@link LibraryFrame}).
 *
 * <p>Environment: IEUM_WS_URL, IEUM_HTTP_URL, IEUM_COUPLE, IEUM_TOKEN_A, IEUM_TOKEN_B,
 * IEUM_TOKEN_OUTSIDER, IEUM_TOKEN_SHORT (a token of member A that expires within seconds).
 * Prints "ok NAME: ..." per check; on the first failure prints "FAIL ..." and exits 1.
 */
public final class WireCheck {
    static final MediaType JSON = MediaType.get("application/json; charset=utf-8");

    /** What the app keeps of a message: the guide's data class, read with Gson. */
    static final class ChatMessage {
        String id;
        String coupleId;
        Long seq;
        String senderId;
        String senderName;
        String content;
        String type;
        Boolean isRead;
        LocalDateTime readAt;
        LocalDateTime createdAt;
        String tempId;
    }

    /** The guide's adapter: the server's timestamps are ISO local date-times without offset. */
    static final class LocalDateTimeAdapter extends TypeAdapter<LocalDateTime> {
        @Override
        public void write(JsonWriter out, LocalDateTime value) throws IOException {
            if (value == null) out.nullValue();
            else out.value(value.toString());
        }

        @Override
        public LocalDateTime read(JsonReader in) throws IOException {
            if (in.peek() == JsonToken.NULL) {
                in.nextNull();
                return null;
            }
            return LocalDateTime.parse(in.nextString());
        }
    }

    static final Gson GSON = new GsonBuilder()
            .registerTypeAdapter(LocalDateTime.class, new LocalDateTimeAdapter().nullSafe())
            .create();

    private final Map<String, String> env = System.getenv();
    private final List<String> problems = Collections.synchronizedList(new ArrayList<>());
    private final Map<String, Integer> headersSeen = Collections.synchronizedMap(new LinkedHashMap<>());
    // pingInterval as the guide sets it (shorter): a ping without its pong fails the socket.
    private final OkHttpClient http = new OkHttpClient.Builder()
            .pingInterval(1, TimeUnit.SECONDS)
            .readTimeout(0, TimeUnit.MILLISECONDS)
            .callTimeout(Link.GUARD_MS, TimeUnit.MILLISECONDS)
            .build();
    private final List<Link> links = new ArrayList<>();
    private final String couple = need("IEUM_COUPLE");
    private final String topic = "/topic/couple/" + couple;
    private final String app = "/app/chat/" + couple;

    public static void main(String[] args) {
        WireCheck check = new WireCheck();
        int status = 0;
        try {
            check.run();
        } catch (AssertionError | RuntimeException | IOException e) {
            System.out.println("FAIL " + e.getMessage());
            e.printStackTrace(System.err);
            status = 1;
        } finally {
            for (Link link : check.links) link.kill();
            check.http.dispatcher().executorService().shutdown();
            check.http.connectionPool().evictAll();
        }
        System.out.flush();
        System.exit(status);
    }

    private String need(String name) {
        String value = env.get(name);
        if (value == null || value.isEmpty()) throw new IllegalArgumentException(name + " is not set");
        return value;
    }

    static void ok(String name, String what) {
        System.out.println("ok " + name + ": " + what);
        System.out.flush();
    }

    static void expect(boolean condition, String what) {
        if (!condition) throw new AssertionError(what);
    }

    private void noWireProblems(String where) {
        synchronized (problems) {
            if (!problems.isEmpty()) throw new AssertionError("wire problems " + where + ": " + String.join("; ", problems));
        }
    }

    /** Opens a socket (no token in the URL) and sends the guide's CONNECT. */
    private Link connect(String name, String token, String deviceId, int heartbeatMs) {
        Link link = new Link(http, need("IEUM_WS_URL"), name, problems, headersSeen);
        links.add(link);
        link.awaitState("the WebSocket opening", l -> l.isOpen() || l.closed() != null);
        expect(link.isOpen(), name + ": the WebSocket did not open: " + link.closed());
        List<String[]> headers = new ArrayList<>();
        headers.add(new String[] {"accept-version", "1.1,1.2"});
        headers.add(new String[] {"heart-beat", heartbeatMs + "," + heartbeatMs});
        headers.add(new String[] {"Authorization", "Bearer " + token});
        if (deviceId != null) headers.add(new String[] {"x-device-id", deviceId});
        link.send("CONNECT", headers.toArray(new String[0][]), null);
        return link;
    }

    private static String subscribe(Link link, String destination, String... extra) {
        String id = UUID.randomUUID().toString();
        List<String[]> headers = new ArrayList<>();
        headers.add(new String[] {"id", id});
        headers.add(new String[] {"destination", destination});
        headers.add(new String[] {"ack", "auto"});
        for (int i = 0; i < extra.length; i += 2) headers.add(new String[] {extra[i], extra[i + 1]});
        link.send("SUBSCRIBE", headers.toArray(new String[0][]), null);
        return id;
    }

    private static void sendChat(Link link, String destination, String receipt, String type, String content, String tempId) {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("type", type);
        body.put("content", content);
        body.put("tempId", tempId);
        link.send("SEND", new String[][] {
            {"destination", destination},
            {"content-type", "application/json"},
            {"receipt", receipt},
        }, GSON.toJson(body));
    }

    private static Link.Received receipt(Link link, String id) {
        return link.await("RECEIPT " + id, r -> r.frame.command.equals("RECEIPT") && id.equals(r.header("receipt-id")));
    }

    private Link.Received chatMessage(Link link, String tempId) {
        return link.await("MESSAGE with tempId " + tempId, r -> r.frame.command.equals("MESSAGE")
                && topic.equals(r.header("destination")) && r.json != null && r.json.has("tempId")
                && !r.json.get("tempId").isJsonNull() && tempId.equals(r.json.get("tempId").getAsString()));
    }

    private JsonElement rest(String method, String path, String token, Object body, int expectStatus) throws IOException {
        Request.Builder request = new Request.Builder()
                .url(need("IEUM_HTTP_URL") + path)
                .header("Authorization", "Bearer " + token)
                .header("X-Device-Id", "pixel-a");
        RequestBody payload = body == null ? null : RequestBody.create(JSON, GSON.toJson(body));
        request.method(method, payload);
        try (Response response = http.newCall(request.build()).execute()) {
            String text = response.body() != null ? response.body().string() : "";
            expect(response.code() == expectStatus, method + " " + path + ": HTTP " + response.code() + " " + text);
            return text.isEmpty() ? null : JsonParser.parseString(text);
        }
    }

    private static Map<String, Object> textRequest(String content, String tempId) {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("type", "TEXT");
        body.put("content", content);
        body.put("tempId", tempId);
        return body;
    }

    /** The reading rule itself, on frames whose fate in the library is known. */
    private static void selfCheck() {
        String good = "MESSAGE\ndestination:/topic/couple/1\nsubscription:s-1\ncontent-length:2\n\n{}\0";
        try {
            LibraryFrame read = LibraryFrame.read(good);
            expect("/topic/couple/1".equals(read.header("destination")) && "{}".equals(read.payload)
                    && LibraryFrame.compareWithStomp(good, read) == null, "a plain MESSAGE misread");
            expect(LibraryFrame.read("\n").heartbeat && !LibraryFrame.read("\r\n").heartbeat, "heart-beat rule");
            String escaped = "MESSAGE\ndestination:/a\\cb\n\n{}\0";
            expect(LibraryFrame.compareWithStomp(escaped, LibraryFrame.read(escaped)) != null, "an escaped colon passed");
            String two = "RECEIPT\nreceipt-id:r1\n\n\0RECEIPT\nreceipt-id:r2\n\n\0";
            expect(LibraryFrame.compareWithStomp(two, LibraryFrame.read(two)) != null, "two frames in one message passed");
        } catch (LibraryFrame.Unreadable e) {
            throw new AssertionError("self-check: " + e.getMessage());
        }
        for (String bad : List.of("ERROR\nmessage:no such destination\n\n\0", "MESSAGE\nmessage-id:a:1\n\n\0",
                "MESSAGE\nx-empty:\n\n\0")) {
            try {
                LibraryFrame.read(bad);
                throw new AssertionError("self-check: read " + LibraryFrame.quote(bad));
            } catch (LibraryFrame.Unreadable expected) {
                // The library's parser throws here and its message stream ends.
            }
        }
        ok("parser", "the library's reading rule refuses a header value with a space or a colon or none,"
                + " and the STOMP 1.2 comparison catches an escape and two frames in one message");
    }

    private void run() throws IOException {
        String tokenA = need("IEUM_TOKEN_A");
        String tokenB = need("IEUM_TOKEN_B");

        selfCheck();
        // A session on a token that expires within seconds: checked at the end.
        Link s = connect("short", need("IEUM_TOKEN_SHORT"), "tablet-a", 0);
        s.await("CONNECTED", r -> r.frame.command.equals("CONNECTED"));

        // CONNECT: the token and the device in STOMP headers, as StompClient.connect(headers) sends them.
        Link a = connect("a", tokenA, "pixel-a", 1000);
        Link.Received connected = a.await("CONNECTED", r -> r.frame.command.equals("CONNECTED"));
        expect("1.2".equals(connected.header("version")), "version " + connected.header("version"));
        String beat = connected.header("heart-beat");
        expect(beat != null && beat.matches("\\d+,\\d+"), "heart-beat header " + beat);
        String[] beats = beat.split(",");
        int clientEvery = Math.max(1000, Integer.parseInt(beats[1]));
        a.startHeartbeats(clientEvery);
        ok("connect", "CONNECTED version:1.2 heart-beat:" + beat + " (Authorization and x-device-id in CONNECT)");

        // The errors queue, then the topic from seq 0 with a receipt.
        String errorsA = subscribe(a, "/user/queue/errors");
        String topicA = subscribe(a, topic, "x-resume-after-seq", "0", "receipt", "sub-topic-a");
        receipt(a, "sub-topic-a");
        ok("subscribe", "RECEIPT sub-topic-a for " + topic + " with x-resume-after-seq:0");

        // SEND with a tempId and a receipt: RECEIPT (durable), then the MESSAGE with its seq.
        sendChat(a, app, "send-1", "TEXT", "안녕하세요! 🙂 {\"quoted\": \"a:b c\"}", "android-1");
        receipt(a, "send-1");
        Link.Received first = chatMessage(a, "android-1");
        expect(topicA.equals(first.header("subscription")), "subscription " + first.header("subscription") + " != " + topicA);
        expect(first.header("message-id") != null, "no message-id");
        String contentType = first.header("content-type");
        expect(contentType != null && contentType.startsWith("application/json"), "content-type " + contentType);
        ChatMessage m1 = GSON.fromJson(first.frame.payload, ChatMessage.class);
        expect(m1.seq != null && m1.seq == 1, "first seq " + m1.seq);
        expect("안녕하세요! 🙂 {\"quoted\": \"a:b c\"}".equals(m1.content), "content " + m1.content);
        expect(m1.createdAt != null, "createdAt not read as a LocalDateTime");
        expect(couple.equals(m1.coupleId), "coupleId " + m1.coupleId);
        ok("send", "RECEIPT send-1, MESSAGE seq=1 tempId=android-1 subscription=" + topicA
                + " content-type:" + contentType + " createdAt=" + m1.createdAt);

        // The same tempId again (an outbox retry): RECEIPT, nothing stored or broadcast again.
        sendChat(a, app, "send-1-again", "TEXT", "안녕하세요! 🙂 {\"quoted\": \"a:b c\"}", "android-1");
        receipt(a, "send-1-again");
        sendChat(a, app, "send-2", "STICKER", "bear-01", "android-2");
        receipt(a, "send-2");
        ChatMessage m2 = GSON.fromJson(chatMessage(a, "android-2").frame.payload, ChatMessage.class);
        expect(m2.seq == 2, "the message after the retry has seq " + m2.seq);
        long copies = a.all().stream().filter(r -> r.json != null && r.json.has("tempId")
                && "android-1".equals(r.json.get("tempId").getAsString())).count();
        expect(copies == 1, copies + " MESSAGEs with tempId android-1");
        ok("dedup-stomp", "the repeated tempId got RECEIPT send-1-again, one MESSAGE; the next message is seq 2");

        // REST: the same tempId answers the stored message; a new one is broadcast to the socket.
        JsonObject again = rest("POST", "/chat/rooms/" + couple + "/messages", tokenA,
                textRequest("안녕하세요! 🙂 {\"quoted\": \"a:b c\"}", "android-1"), 201).getAsJsonObject();
        expect(m1.id.equals(again.get("id").getAsString()) && again.get("seq").getAsLong() == 1,
                "REST retry answered " + again);
        JsonObject posted = rest("POST", "/chat/rooms/" + couple + "/messages", tokenA,
                textRequest("offline send", "android-3"), 201).getAsJsonObject();
        expect(posted.get("seq").getAsLong() == 3, "REST send seq " + posted.get("seq"));
        ChatMessage m3 = GSON.fromJson(chatMessage(a, "android-3").frame.payload, ChatMessage.class);
        expect(m3.seq == 3 && m3.id.equals(posted.get("id").getAsString()), "the socket saw " + m3.seq);
        ok("dedup-rest", "POST with tempId android-1 answered the stored message id=" + m1.id
                + " seq=1; android-3 stored as seq 3 and broadcast on the topic");

        // History by seq cursor, oldest first.
        JsonObject page = rest("GET", "/chat/rooms/" + couple + "/messages?after=0&order=asc&limit=2", tokenA, null, 200)
                .getAsJsonObject();
        JsonArray msgs = page.getAsJsonArray("messages");
        expect(msgs.size() == 2 && msgs.get(0).getAsJsonObject().get("seq").getAsLong() == 1
                && msgs.get(1).getAsJsonObject().get("seq").getAsLong() == 2 && page.get("hasMore").getAsBoolean(),
                "history page " + page);
        long cursor = page.get("nextCursor").getAsLong();
        JsonObject next = rest("GET", "/chat/rooms/" + couple + "/messages?after=" + cursor + "&order=asc&limit=2", tokenA,
                null, 200).getAsJsonObject();
        JsonArray rest2 = next.getAsJsonArray("messages");
        expect(rest2.size() == 1 && rest2.get(0).getAsJsonObject().get("seq").getAsLong() == 3
                && !next.get("hasMore").getAsBoolean(), "second history page " + next);
        for (JsonElement e : msgs) GSON.fromJson(e, ChatMessage.class);
        ok("history", "after=0&order=asc&limit=2 gave seqs 1,2 with nextCursor=" + cursor + "; the next page gave seq 3");

        // FCM registration of this device.
        Map<String, Object> device = new LinkedHashMap<>();
        device.put("platform", "fcm");
        device.put("token", "fcm-registration-token-abcdef123456");
        device.put("locale", "ko-KR");
        JsonObject registered = rest("PUT", "/chat/devices/pixel-a", tokenA, device, 201).getAsJsonObject();
        expect("fcm".equals(registered.get("platform").getAsString())
                && "123456".equals(registered.get("tokenSuffix").getAsString()), "device " + registered);
        rest("PUT", "/chat/devices/pixel-a", tokenA, device, 200);
        ok("device", "PUT /chat/devices/pixel-a platform fcm: 201, then 200 when registered again");

        // A non-member: the refusal comes as a MESSAGE on /user/queue/errors; no RECEIPT; still open.
        Link c = connect("outsider", need("IEUM_TOKEN_OUTSIDER"), "other-phone", 0);
        c.await("CONNECTED", r -> r.frame.command.equals("CONNECTED"));
        String errorsC = subscribe(c, "/user/queue/errors");
        subscribe(c, topic, "receipt", "sub-spy");
        Link.Received refused = c.await("an error on /user/queue/errors", r -> r.frame.command.equals("MESSAGE")
                && "/user/queue/errors".equals(r.header("destination")));
        expect(errorsC.equals(refused.header("subscription")), "subscription " + refused.header("subscription"));
        expect(refused.json != null && "ERROR".equals(refused.json.get("type").getAsString())
                && "UNAUTHORIZED".equals(refused.json.get("code").getAsString()), "payload " + refused.frame.payload);
        subscribe(c, "/user/queue/events", "receipt", "after-spy");
        receipt(c, "after-spy");
        expect(c.all().stream().noneMatch(r -> "sub-spy".equals(r.header("receipt-id"))), "RECEIPT for a refused SUBSCRIBE");
        expect(c.all().stream().noneMatch(r -> r.frame.command.equals("ERROR")), "ERROR frame for a refused SUBSCRIBE");
        ok("non-member", "UNAUTHORIZED on destination:/user/queue/errors (subscription " + errorsC
                + "), no RECEIPT sub-spy, the session stays open");

        // Heart-beats: the server's are one LF per WebSocket message; ours are CRLF.
        // Three server heart-beats: longer than the server waits (twice the agreed 1 s) for ours.
        a.awaitState("three server heart-beats", l -> l.serverHeartbeats() >= 3 && l.clientHeartbeats() >= 2);
        a.send("SUBSCRIBE", new String[][] {{"id", "hb"}, {"destination", "/user/queue/events"}, {"receipt", "alive"}}, null);
        receipt(a, "alive");
        ok("heart-beat", "server heart-beats arrive as a lone \"\\n\" message (" + a.serverHeartbeats()
                + " so far); the session stays up on the client's \"\\r\\n\" heart-beats (" + a.clientHeartbeats()
                + " sent), and OkHttp's pings every second were answered");

        // Process death with a send in flight, the partner writes meanwhile, then resume.
        long lastSeq = 3;
        sendChat(a, app, "send-5", "TEXT", "sent as the process died", "android-5");
        a.kill();
        rest("POST", "/chat/rooms/" + couple + "/messages", tokenB, textRequest("while you were away", "b-1"), 201);
        rest("POST", "/chat/rooms/" + couple + "/messages", tokenB, textRequest("are you there?", "b-2"), 201);
        Link a2 = connect("a-again", tokenA, "pixel-a", 0);
        a2.await("CONNECTED", r -> r.frame.command.equals("CONNECTED"));
        subscribe(a2, "/user/queue/errors");
        subscribe(a2, topic, "x-resume-after-seq", Long.toString(lastSeq), "receipt", "sub-resume");
        receipt(a2, "sub-resume");
        sendChat(a2, app, "send-5-again", "TEXT", "sent as the process died", "android-5"); // the outbox
        receipt(a2, "send-5-again");
        sendChat(a2, app, "send-6", "TEXT", "back online", "android-6");
        receipt(a2, "send-6");
        chatMessage(a2, "android-6");
        List<Long> seqs = new ArrayList<>();
        List<String> temps = new ArrayList<>();
        for (Link.Received r : a2.all()) {
            if (r.frame.command.equals("MESSAGE") && topic.equals(r.header("destination")) && r.json != null
                    && r.json.has("seq") && !r.json.get("seq").isJsonNull()) {
                seqs.add(r.json.get("seq").getAsLong());
                temps.add(r.json.get("tempId").getAsString());
            }
        }
        expect(seqs.equals(List.of(4L, 5L, 6L, 7L)), "seqs after resuming from 3: " + seqs);
        List<String> sorted = new ArrayList<>(temps);
        Collections.sort(sorted);
        expect(sorted.equals(List.of("android-5", "android-6", "b-1", "b-2")), "tempIds after the resume: " + temps);
        ok("resume", "x-resume-after-seq:3 gave seqs " + seqs + " (tempIds " + temps
                + "): the partner's two, the re-sent outbox entry once, the live one");

        // A token that expires: ERROR TOKEN_EXPIRED, readable by the library, no destination, then close.
        Link.Received expired = s.await("ERROR", r -> r.frame.command.equals("ERROR"));
        expect("TOKEN_EXPIRED".equals(expired.header("message")), "ERROR message header " + expired.header("message"));
        expect(expired.header("destination") == null, "an ERROR with a destination");
        expect(expired.json != null && "TOKEN_EXPIRED".equals(expired.json.get("code").getAsString()), "ERROR body " + expired.frame.payload);
        s.awaitState("the close after TOKEN_EXPIRED", l -> l.closed() != null);
        ok("token-expired", "ERROR message:TOKEN_EXPIRED (no destination header: no topic stream sees it), then "
                + s.closed());

        for (Link link : List.of(a2, c)) {
            link.send("DISCONNECT", new String[][] {{"receipt", "bye-" + link.name}}, null);
            receipt(link, "bye-" + link.name);
            link.close();
        }
        noWireProblems("at the end");
        int total = 0;
        for (Link link : links) total += link.messages();
        ok("frames", total + " WebSocket messages, each exactly one STOMP frame or a lone heart-beat LF,"
                + " read the same by the library's rules and by STOMP 1.2");
        List<String> needed = List.of("destination", "subscription", "message-id", "receipt-id", "content-type");
        for (String name : needed) expect(headersSeen.containsKey(name), "never saw a " + name + " header");
        ok("headers", "every header of every frame matched ([^:\\s]+)\\s*:\\s*([^:\\s]+) with its STOMP 1.2 value; seen "
                + headersSeen.keySet());
        ok("bodies", "every body was the whole JSON (content-length agreed; Gson read createdAt as LocalDateTime)");
    }
}
