package ieum.android;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One WebSocket message as StompProtocolAndroid 1.6.6 reads it ({@code StompMessage.from}),
 * written from its documented behaviour, beside a strict STOMP 1.2 reading of the same text.
 *
 * <p>The library's rule: a message that is blank once trimmed is no frame (a heart-beat when it
 * is exactly "\n"). Otherwise the text is cut at LF: the first line is the command; each
 * following line is a header while the whole line matches {@code ([^:\s]+)\s*:\s*([^:\s]+)}
 * (name, value: no colon, no white space, no unescaping); the headers must then be followed
 * by an empty line, or the parser throws and the library's message stream ends; the body is
 * the text after the empty line up to the first NUL (null when empty). One message is one
 * frame: anything after the first NUL is ignored.
 */
final class LibraryFrame {
    static final Pattern HEADER = Pattern.compile("([^:\\s]+)\\s*:\\s*([^:\\s]+)");

    /** A message the library cannot read: its message stream would end here. */
    static final class Unreadable extends Exception {
        private static final long serialVersionUID = 1L;

        Unreadable(String why) {
            super(why);
        }
    }

    final String command;
    final List<String[]> headers;
    final String payload;
    final boolean heartbeat;

    private LibraryFrame(String command, List<String[]> headers, String payload, boolean heartbeat) {
        this.command = command;
        this.headers = headers;
        this.payload = payload;
        this.heartbeat = heartbeat;
    }

    String header(String name) {
        for (String[] h : headers) {
            if (h[0].equals(name)) return h[1];
        }
        return null;
    }

    /** The library's reading of one WebSocket text message. */
    static LibraryFrame read(String data) throws Unreadable {
        if (data.trim().isEmpty()) {
            return new LibraryFrame("UNKNOWN", List.of(), data, data.equals("\n"));
        }
        int end = data.indexOf('\n');
        if (end < 0) throw new Unreadable("no end of the command line");
        String command = data.substring(0, end);
        List<String[]> headers = new ArrayList<>();
        int pos = end;
        while (data.startsWith("\n", pos)) {
            int next = data.indexOf('\n', pos + 1);
            String line = data.substring(pos + 1, next < 0 ? data.length() : next);
            Matcher m = HEADER.matcher(line);
            if (!m.matches()) break;
            headers.add(new String[] {m.group(1), m.group(2)});
            pos += 1 + line.length();
        }
        if (!data.startsWith("\n\n", pos)) {
            int next = data.indexOf('\n', pos + 1);
            String line = data.substring(Math.min(pos + 1, data.length()), next < 0 ? data.length() : next);
            throw new Unreadable("header line " + quote(line) + " does not match the header pattern");
        }
        String rest = data.substring(pos + 2);
        if (rest.startsWith("\0")) rest = rest.substring(1);
        int nul = rest.indexOf('\0');
        String payload = nul < 0 ? rest : rest.substring(0, nul);
        return new LibraryFrame(command, headers, payload.isEmpty() ? null : payload, false);
    }

    /**
     * The same message read by the STOMP 1.2 rules (headers unescaped, content-length honoured),
     * checked against the library's reading: one frame per message, the same command, every
     * header with the same name and value, the same body. Returns what differs, or null.
     */
    static String compareWithStomp(String data, LibraryFrame lib) {
        if (lib.heartbeat) return null;
        if (data.trim().isEmpty()) return "a blank message other than one LF: " + quote(data);
        int nul = data.indexOf('\0');
        if (nul < 0) return "no NUL: not a whole frame";
        if (nul != data.length() - 1) {
            return "more than one frame, or bytes after the NUL: " + quote(data.substring(nul));
        }
        if (data.indexOf('\r') >= 0) return "CR in the frame";
        int headEnd = data.indexOf("\n\n");
        if (headEnd < 0) return "no end of headers";
        String[] lines = data.substring(0, headEnd).split("\n", -1);
        if (!lines[0].equals(lib.command)) return "command " + quote(lines[0]) + " read as " + quote(lib.command);
        if (lines.length - 1 != lib.headers.size()) {
            return (lines.length - 1) + " header lines, the library kept " + lib.headers.size();
        }
        for (int i = 1; i < lines.length; i++) {
            int colon = lines[i].indexOf(':');
            if (colon < 0) return "header line without a colon: " + quote(lines[i]);
            String name = unescape(lines[i].substring(0, colon));
            String value = unescape(lines[i].substring(colon + 1));
            String[] seen = lib.headers.get(i - 1);
            if (!seen[0].equals(name) || !seen[1].equals(value)) {
                return "header " + quote(name + ":" + value) + " read as " + quote(seen[0] + ":" + seen[1]);
            }
        }
        String body = data.substring(headEnd + 2, nul);
        String length = lib.header("content-length");
        if (length != null && Integer.parseInt(length) != body.getBytes(StandardCharsets.UTF_8).length) {
            return "content-length " + length + " but the body has " + body.getBytes(StandardCharsets.UTF_8).length + " bytes";
        }
        String expected = body.isEmpty() ? null : body;
        if (expected == null ? lib.payload != null : !expected.equals(lib.payload)) {
            return "body " + quote(body) + " read as " + quote(lib.payload);
        }
        return null;
    }

    private static String unescape(String s) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\' && i + 1 < s.length()) {
                char n = s.charAt(++i);
                out.append(n == 'n' ? '\n' : n == 'r' ? '\r' : n == 'c' ? ':' : n);
            } else {
                out.append(c);
            }
        }
        return out.toString();
    }

    static String quote(String s) {
        if (s == null) return "null";
        String shown = s.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\0", "\\0");
        return "\"" + (shown.length() > 200 ? shown.substring(0, 200) + "..." : shown) + "\"";
    }
}
