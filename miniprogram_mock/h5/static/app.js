// The resident app (H5): shell, hash router, realtime, the incoming-call dialog.
// Screens live in screens/*.js; each is `async (ctx, params) => Node`.
import { all, api, loggedIn, login } from "./api.js";
import { errorText, lang, setLang, t } from "./i18n.js";
import { connect } from "./realtime.js";
import { endCall, showCall } from "./call.js";
import { h, toast } from "./ui.js";
import { homeScreen, joinScreen, loginScreen } from "./screens/home.js";
import { faceScreen } from "./screens/face.js";
import { newPassScreen, passScreen, passesScreen } from "./screens/passes.js";
import { householdScreen } from "./screens/household.js";
import { messagesScreen } from "./screens/messages.js";
import { meScreen } from "./screens/me.js";

const ROUTES = [
  [/^\/login$/, loginScreen, null],
  [/^\/$/, homeScreen, "home"],
  [/^\/join$/, joinScreen, "home"],
  [/^\/face$/, faceScreen, "me"],
  [/^\/passes$/, passesScreen, "passes"],
  [/^\/passes\/new\/(visitor|delivery)$/, newPassScreen, "passes"],
  [/^\/passes\/(\d+)$/, passScreen, "passes"],
  [/^\/household$/, householdScreen, "me"],
  [/^\/messages$/, messagesScreen, "messages"],
  [/^\/me$/, meScreen, "me"],
];
const TABS = [
  ["home", "#/", "nav.home"],
  ["passes", "#/passes", "nav.passes"],
  ["messages", "#/messages", "nav.messages"],
  ["me", "#/me", "nav.me"],
];

// What every screen may use: the API, the live socket, shared lookups, navigation.
const ctx = {
  api,
  all,
  socket: null,
  unread: 0,
  listeners: new Set(), // screens that want realtime messages while shown
  communities: null,
  go(path) {
    if (location.hash === `#${path}`) render();
    else location.hash = `#${path}`;
  },
  rerender: () => render(),
  async communityNames() {
    if (!this.communities) {
      const list = await all("/communities");
      this.communities = new Map(list.map((c) => [c.id, c]));
    }
    return this.communities;
  },
  communityName(c) {
    if (!c) return "";
    return lang() === "en" && c.name_en ? c.name_en : c.name;
  },
  setUnread(n) {
    this.unread = Math.max(0, n);
    const badge = document.querySelector("[data-unread]");
    if (badge) {
      badge.textContent = this.unread > 0 ? String(this.unread) : "";
      badge.hidden = this.unread === 0;
    }
  },
};

function path() {
  const raw = location.hash.replace(/^#/, "") || "/";
  return raw.split("?")[0];
}

function drawChrome(active) {
  document.title = t("app.title");
  document.getElementById("brand").textContent = t("app.name");
  const skip = document.getElementById("skip");
  skip.textContent = t("skip");
  const switcher = document.getElementById("lang-switch");
  switcher.textContent = t("lang.switch");
  switcher.setAttribute("lang", lang() === "en" ? "zh-CN" : "en");
  switcher.setAttribute("aria-label", t("lang.switch.label"));
  const tabs = document.getElementById("tabs");
  tabs.setAttribute("aria-label", t("nav.label"));
  tabs.hidden = !loggedIn() || active === null;
  tabs.replaceChildren(
    ...TABS.map(([name, href, key]) =>
      h(
        "a",
        { href, class: "tab", "aria-current": name === active ? "page" : null, dataset: { tab: name } },
        h("span", { class: `tab-icon icon-${name}`, "aria-hidden": "true" }),
        h("span", { class: "tab-text" }, t(key)),
        name === "messages"
          ? h("span", { class: "badge", dataset: { unread: "" }, hidden: ctx.unread === 0 }, ctx.unread || "")
          : null,
      ),
    ),
  );
}

let rendering = 0;

async function render() {
  const mine = ++rendering;
  let current = path();
  if (!loggedIn() && current !== "/login") current = "/login";
  if (loggedIn() && current === "/login") current = "/";
  const route = ROUTES.find(([re]) => re.test(current)) || ROUTES[1];
  const [re, make, tab] = route;
  const params = current.match(re) || [];
  drawChrome(tab);
  ctx.listeners.clear();
  const main = document.getElementById("main");
  main.setAttribute("aria-busy", "true");
  let node;
  try {
    node = await make(ctx, params.slice(1));
  } catch (err) {
    node = h(
      "section",
      { class: "screen" },
      h("h1", {}, t("error.title")),
      h("p", { role: "alert", dataset: { error: err.code || "" } }, errorText(err)),
      h("a", { class: "btn btn-secondary", href: "#/" }, t("error.home")),
    );
  }
  if (mine !== rendering) return; // a later navigation won
  main.replaceChildren(node);
  main.removeAttribute("aria-busy");
  main.dataset.screen = current;
  if (ctx.lastPath !== current) window.scrollTo(0, 0);
  ctx.lastPath = current;
}

function startRealtime() {
  if (ctx.socket || !loggedIn()) return;
  ctx.socket = connect({
    onState(live) {
      // Say so when live updates stop (calls would not ring), not before the first connect.
      const banner = document.getElementById("offline");
      if (live) ctx.wasLive = true;
      banner.textContent = t("messages.offline");
      banner.hidden = live || !ctx.wasLive || !loggedIn();
      document.body.dataset.live = live ? "1" : "0";
    },
    onMessage(message) {
      if (message.type === "notification" && message.data) {
        ctx.setUnread(ctx.unread + (message.data.read ? 0 : 1));
        toast(lang() === "en" ? message.data.title_en : message.data.title_zh);
      }
      if (message.type === "intercom.call" && message.data) showCall(ctx, message.data);
      if (message.type === "intercom.ended") endCall(message.data);
      for (const listener of ctx.listeners) listener(message);
    },
  });
}

async function afterLogin() {
  startRealtime();
  try {
    ctx.setUnread((await api("/notifications/unread-count")).unread);
    // Calls already ringing when the app opens (the socket only tells of new ones).
    for (const call of (await api("/intercom/calls")).items) {
      if (call.state === "ringing") showCall(ctx, call);
    }
  } catch {
    /* the screens show their own errors */
  }
}

ctx.loginNow = async (opts) => {
  await login(opts);
  try {
    const me = await api("/me");
    if (me.language && me.language !== lang()) await api("/me/language", { method: "PUT", json: { language: lang() } });
  } catch {
    /* language stays local */
  }
  await afterLogin();
  ctx.go("/");
};

ctx.switchLanguage = async () => {
  const next = lang() === "en" ? "zh" : "en";
  setLang(next);
  if (loggedIn()) {
    try {
      await api("/me/language", { method: "PUT", json: { language: next } }); // WeChat messages too
    } catch {
      /* kept locally */
    }
  }
  await render();
};

window.addEventListener("hashchange", render);
window.addEventListener("anxin:logged-out", () => {
  if (ctx.socket) ctx.socket.close();
  ctx.socket = null;
  ctx.wasLive = false;
  document.getElementById("offline").hidden = true;
  ctx.go("/login");
});
document.getElementById("lang-switch").addEventListener("click", () => ctx.switchLanguage());
document.getElementById("skip").addEventListener("click", (event) => {
  event.preventDefault();
  document.getElementById("main").focus();
});
setLang(lang());
render();
if (loggedIn()) afterLogin();
