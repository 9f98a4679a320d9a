package ieum.android;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;

import okhttp3.OkHttpClient;
import okhttp3.Request;
import okhttp3.Response;
import okhttp3.WebSocket;
import okhttp3.WebSocketListener;
import okio.ByteString;

/**
 * One STOMP session over an OkHttp WebSocket, speaking as StompProtocolAndroid does: frames
 * written as its {@code StompMessage.compile()} writes them (no content-length, no escaping),
 * one frame per WebSocket message, client heart-beats as "\r\n". Every message received is
 * read with {@link LibraryFrame} and checked against a STOMP 1.2 reading; a difference is a
 * wire problem the program reports.
 */
final class Link extends WebSocketListener {
    /** How long any wait may last before the program gives up (a failure guard). */
    static final long GUARD_MS = 15_000;

    static final class Received {
        final LibraryFrame frame;
        final JsonObject json;
        boolean taken;

        Received(LibraryFrame frame, JsonObject json) {
            this.frame = frame;
            this.json = json;
        }

        String header(String name) {
            return frame.header(name);
        }
    }

    final String name;
    private final WebSocket socket;
    private final List<Received> received = new ArrayList<>();
    private final List<String> problems;
    private final Map<String, Integer> headersSeen;
    private ScheduledExecutorService heartbeats;
    private int serverHeartbeats;
    private int clientHeartbeats;
    private int messages;
    private boolean open;
    private String closed;

    Link(OkHttpClient http, String url, String name, List<String> problems, Map<String, Integer> headersSeen) {
        this.name = name;
        this.problems = problems;
        this.headersSeen = headersSeen;
        this.socket = http.newWebSocket(new Request.Builder().url(url).build(), this);
    }

    /** A frame as the library's {@code StompMessage.compile(false)} writes it. */
    static String compile(String command, String[][] headers, String body) {
        StringBuilder b = new StringBuilder(command).append('\n');
        for (String[] h : headers) b.append(h[0]).append(':').append(h[1]).append('\n');
        b.append('\n');
        if (body != null) b.append(body);
        return b.append('\0').toString();
    }

    void send(String command, String[][] headers, String body) {
        if (!socket.send(compile(command, headers, body))) throw new IllegalStateException(name + ": socket closed");
    }

    /** Sends "\r\n" every `ms`, as the library's heart-beat task does once CONNECTED. */
    synchronized void startHeartbeats(long ms) {
        heartbeats = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, name + "-heart-beat");
            t.setDaemon(true);
            return t;
        });
        heartbeats.scheduleAtFixedRate(() -> {
            if (socket.send("\r\n")) {
                synchronized (this) {
                    clientHeartbeats++;
                }
            }
        }, ms, ms, TimeUnit.MILLISECONDS);
    }

    void close() {
        stopHeartbeats();
        socket.close(1000, "");
    }

    /** Drops the connection at once, as a process that dies does. */
    void kill() {
        stopHeartbeats();
        socket.cancel();
    }

    private synchronized void stopHeartbeats() {
        if (heartbeats != null) heartbeats.shutdownNow();
    }

    synchronized int serverHeartbeats() {
        return serverHeartbeats;
    }

    synchronized int clientHeartbeats() {
        return clientHeartbeats;
    }

    synchronized int messages() {
        return messages;
    }

    synchronized boolean isOpen() {
        return open;
    }

    synchronized String closed() {
        return closed;
    }

    synchronized List<Received> all() {
        return new ArrayList<>(received);
    }

    /** The first frame not yet taken that `match` accepts; waits for it (GUARD_MS at most). */
    synchronized Received await(String what, Predicate<Received> match) {
        long deadline = System.currentTimeMillis() + GUARD_MS;
        while (true) {
            for (Received r : received) {
                if (!r.taken && match.test(r)) {
                    r.taken = true;
                    return r;
                }
            }
            long left = deadline - System.currentTimeMillis();
            if (left <= 0 || (closed != null && !open)) {
                throw new AssertionError(name + ": no " + what + " (closed: " + closed + "; received: " + describe() + ")");
            }
            try {
                wait(Math.min(left, 200));
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        }
    }

    /** Waits until `condition` holds (GUARD_MS at most). */
    synchronized void awaitState(String what, Predicate<Link> condition) {
        long deadline = System.currentTimeMillis() + GUARD_MS;
        while (!condition.test(this)) {
            long left = deadline - System.currentTimeMillis();
            if (left <= 0) throw new AssertionError(name + ": " + what + " did not happen (closed: " + closed + ")");
            try {
                wait(Math.min(left, 200));
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        }
    }

    private String describe() {
        StringBuilder b = new StringBuilder();
        for (Received r : received) {
            b.append(r.taken ? "\n  (taken) " : "\n  ").append(r.frame.command).append(' ');
            for (String[] h : r.frame.headers) b.append(h[0]).append('=').append(h[1]).append(' ');
            if (r.frame.payload != null) b.append(LibraryFrame.quote(r.frame.payload));
        }
        return b.toString();
    }

    @Override
    public synchronized void onOpen(WebSocket webSocket, Response response) {
        open = true;
        notifyAll();
    }

    @Override
    public void onMessage(WebSocket webSocket, String text) {
        LibraryFrame frame;
        try {
            frame = LibraryFrame.read(text);
        } catch (LibraryFrame.Unreadable e) {
            problem("the library cannot read " + LibraryFrame.quote(text) + ": " + e.getMessage());
            return;
        }
        String difference = LibraryFrame.compareWithStomp(text, frame);
        if (difference != null) problem(difference + " in " + LibraryFrame.quote(text));
        synchronized (this) {
            messages++;
            if (frame.heartbeat) {
                serverHeartbeats++;
            } else if (!frame.command.equals("UNKNOWN")) {
                JsonObject json = null;
                if (frame.payload != null && frame.payload.startsWith("{")) {
                    try {
                        json = JsonParser.parseString(frame.payload).getAsJsonObject();
                    } catch (RuntimeException e) {
                        problem("body is not one JSON object: " + LibraryFrame.quote(frame.payload));
                    }
                }
                received.add(new Received(frame, json));
                for (String[] h : frame.headers) headersSeen.merge(h[0], 1, Integer::sum);
            }
            notifyAll();
        }
    }

    @Override
    public void onMessage(WebSocket webSocket, ByteString bytes) {
        problem("a binary WebSocket message (the server sends text)");
    }

    @Override
    public void onClosing(WebSocket webSocket, int code, String reason) {
        webSocket.close(code, reason);
        synchronized (this) {
            closed = "closed by the server: " + code;
            open = false;
            notifyAll();
        }
    }

    @Override
    public synchronized void onClosed(WebSocket webSocket, int code, String reason) {
        if (closed == null) closed = "closed: " + code;
        open = false;
        notifyAll();
    }

    @Override
    public synchronized void onFailure(WebSocket webSocket, Throwable t, Response response) {
        if (closed == null) closed = "failed: " + t + (response != null ? " (HTTP " + response.code() + ")" : "");
        open = false;
        notifyAll();
    }

    private synchronized void problem(String what) {
        problems.add(name + ": " + what);
        notifyAll();
    }

    static Map<String, Integer> newHeaderCount() {
        return new LinkedHashMap<>();
    }
}
