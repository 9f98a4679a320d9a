// A CommonJS application (require) gets the same types through the "require" condition.
import { ChatClient, MemoryStorage, type ChatMessage } from "@ieum/chat";

export function make(): ChatClient {
  const client = new ChatClient({ baseUrl: "http://127.0.0.1:8080", token: () => "jwt", storage: new MemoryStorage() });
  client.on("message", (m: ChatMessage) => void m.seq);
  return client;
}
