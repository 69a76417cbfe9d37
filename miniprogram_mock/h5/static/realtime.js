// The realtime socket /api/v1/realtime: the token as the first message (never in the
// URL), a ping every 25 s, a refresh and reconnect when the server closes with 4401.
import { refresh, tokens } from "./api.js";

export function connect({ onMessage, onState }) {
  let ws = null;
  let stopped = false;
  let backoff = 1000;
  let pinger = null;
  const waiting = new Map(); // reply_to -> resolve

  function open() {
    const held = tokens();
    if (!held || stopped) return;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(`${scheme}${location.host}/api/v1/realtime`);
    ws.addEventListener("open", () => ws.send(JSON.stringify({ type: "auth", token: held.access_token })));
    ws.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "hello") {
        backoff = 1000;
        onState(true);
      }
      if (message.reply_to && waiting.has(message.reply_to)) {
        waiting.get(message.reply_to)(message);
        waiting.delete(message.reply_to);
      }
      onMessage(message);
    });
    ws.addEventListener("close", async (event) => {
      onState(false);
      clearInterval(pinger);
      if (stopped) return;
      if (event.code === 4401 && !(await refresh())) return;
      setTimeout(open, backoff);
      backoff = Math.min(backoff * 2, 30000);
    });
    clearInterval(pinger);
    pinger = setInterval(() => send({ type: "ping" }), 25000);
  }

  function send(message) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  // Send and wait for the answer that names our id (null: the socket is not open or no
  // answer came in time; the caller falls back to HTTP).
  function ask(message, timeoutMs = 12000) {
    return new Promise((resolve) => {
      if (!send(message)) return resolve(null);
      const timer = setTimeout(() => {
        waiting.delete(message.id);
        resolve(null);
      }, timeoutMs);
      waiting.set(message.id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
    });
  }

  open();
  return {
    send,
    ask,
    get open() {
      return Boolean(ws && ws.readyState === WebSocket.OPEN);
    },
    close() {
      stopped = true;
      clearInterval(pinger);
      if (ws) ws.close();
    },
  };
}
