// The JSON API, called as the mini-program calls it: Bearer access token, a refresh on
// 401, Accept-Language, an Idempotency-Key per tap (sent again on a retry).
import { lang } from "./i18n.js";

const TOKENS = "anxin.h5.tokens";
const WX_USER = "anxin.h5.wxuser"; // the WeChat user of this browser (a handle from /h5/wx/login)

export class ApiError extends Error {
  constructor(status, body, network = false) {
    super(body && body.error ? body.error.code : `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.network = network;
    this.code = body && body.error ? body.error.code : network ? "network" : `http_${status}`;
  }
}

export function uuid() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function tokens() {
  try {
    return JSON.parse(localStorage.getItem(TOKENS) || "null");
  } catch {
    return null;
  }
}

function saveTokens(body) {
  localStorage.setItem(
    TOKENS,
    JSON.stringify({ access_token: body.access_token, refresh_token: body.refresh_token }),
  );
}

export function loggedIn() {
  return Boolean(tokens());
}

export function forget() {
  localStorage.removeItem(TOKENS);
}

async function post(path, body) {
  const r = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Accept-Language": lang() },
    body: JSON.stringify(body),
  });
  let data = null;
  try {
    data = await r.json();
  } catch {
    data = null;
  }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

// wx.login() as the WeChat client does it (here: the fake WeChat, through /h5/wx/).
export async function login({ newUser = false } = {}) {
  if (newUser) localStorage.removeItem(WX_USER);
  const wx = await post("/h5/wx/login", { user: localStorage.getItem(WX_USER) });
  localStorage.setItem(WX_USER, wx.user);
  saveTokens(await post("/api/v1/auth/wechat/login", { js_code: wx.code }));
}

// The getPhoneNumber button: WeChat hands the mini-program a one-time code.
export async function phoneCode(phoneNumber) {
  return (await post("/h5/wx/phone_code", { phone_number: phoneNumber })).code;
}

// wx.requestSubscribeMessage(): WeChat's "allow one message" sheet for one template.
export async function requestSubscribe(templateId, accept) {
  const user = localStorage.getItem(WX_USER);
  return post("/h5/wx/subscribe", { user, template_id: templateId, accept });
}

let refreshing = null;

export async function refresh() {
  const held = tokens();
  if (!held) return false;
  refreshing ||= (async () => {
    try {
      saveTokens(await post("/api/v1/auth/refresh", { refresh_token: held.refresh_token }));
      return true;
    } catch (err) {
      if (err.status === 401 || err.status === 400 || err.status === 422) forget();
      return false;
    } finally {
      setTimeout(() => (refreshing = null), 0);
    }
  })();
  return refreshing;
}

export async function logout() {
  const held = tokens();
  forget();
  if (held) {
    try {
      await post("/api/v1/auth/logout", { refresh_token: held.refresh_token });
    } catch {
      /* the tokens are gone from this phone either way */
    }
  }
}

// api("/doors"), api("/passes", {method: "POST", json: {...}, idem: true}), raw: the Response.
export async function api(path, opts = {}) {
  const { method = "GET", json, form, idem, raw = false } = opts;
  const key = idem === true ? uuid() : idem;
  const send = async () => {
    const headers = { "Accept-Language": lang() };
    const held = tokens();
    if (held) headers.Authorization = `Bearer ${held.access_token}`;
    if (key) headers["Idempotency-Key"] = key;
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form) {
      body = form;
    }
    return fetch(`/api/v1${path}`, { method, headers, body });
  };
  let r;
  try {
    r = await send();
  } catch {
    if (!key && method !== "GET") throw new ApiError(0, null, true);
    try {
      r = await send(); // a retry of the same tap carries the same key: never twice
    } catch {
      throw new ApiError(0, null, true);
    }
  }
  if (r.status === 401 && tokens()) {
    if (await refresh()) r = await send();
  }
  if (r.status === 401) {
    forget();
    window.dispatchEvent(new CustomEvent("anxin:logged-out"));
  }
  if (!r.ok) {
    let body = null;
    try {
      body = await r.json();
    } catch {
      body = null;
    }
    throw new ApiError(r.status, body);
  }
  if (raw) return r;
  return r.status === 204 ? null : r.json();
}

// Every item of a collection ({"items", "next"}), following `next`.
export async function all(path, limit = 100) {
  const out = [];
  let cursor = null;
  for (let i = 0; i < 20; i++) {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api(`${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    out.push(...page.items);
    cursor = page.next;
    if (!cursor) break;
  }
  return out;
}
