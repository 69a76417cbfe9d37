// Notifications: the list, new ones arriving live over the socket, read / read all.
import { requestSubscribe } from "../api.js";
import { lang, t } from "../i18n.js";
import { card, h, notice, screen, when } from "../ui.js";

function item(ctx, n) {
  const li = h(
    "li",
    { class: `message${n.read ? "" : " unread"}`, dataset: { notification: n.id, type: n.event_type } },
    h("p", { class: "message-title" }, n.read ? null : h("span", { class: "dot" }, h("span", { class: "sr-only" }, t("messages.unread"))), lang() === "en" ? n.title_en : n.title_zh),
    h("p", { class: "message-body" }, lang() === "en" ? n.body_en : n.body_zh),
    h("p", { class: "sub" }, when(n.occurred_at || n.created_at)),
  );
  if (!n.read) {
    const title = lang() === "en" ? n.title_en : n.title_zh;
    const mark = h("button", { type: "button", class: "btn btn-plain btn-small", "aria-label": t("messages.read.label", { title }) }, t("messages.read"));
    mark.addEventListener("click", async () => {
      try {
        await ctx.api(`/notifications/${n.id}/read`, { method: "POST" });
        n.read = true;
        li.classList.remove("unread");
        li.querySelector(".dot")?.remove();
        mark.remove();
        ctx.setUnread(ctx.unread - 1);
      } catch {
        /* stays unread */
      }
    });
    li.append(mark);
  }
  return li;
}

export async function messagesScreen(ctx) {
  const page = await ctx.api("/notifications?limit=50");
  ctx.setUnread(page.unread);
  const seen = new Set(page.items.map((n) => n.id));
  const list = h("ul", { class: "messages", id: "messages" }, page.items.map((n) => item(ctx, n)));
  const empty = h("p", { hidden: page.items.length > 0 }, t("none"));
  const msg = notice();
  const readAll = h("button", { type: "button", class: "btn btn-secondary" }, t("messages.readall"));
  readAll.addEventListener("click", async () => {
    try {
      await ctx.api("/notifications/read-all", { method: "POST" });
      ctx.setUnread(0);
      ctx.rerender();
    } catch (err) {
      msg.error(err);
    }
  });
  ctx.listeners.add((m) => {
    // Live: a repeated push (a dispatcher takeover) is dropped by its id.
    if (m.type !== "notification" || !m.data || seen.has(m.data.id)) return;
    seen.add(m.data.id);
    list.prepend(item(ctx, m.data));
    empty.hidden = true;
  });
  return screen(t("messages.title"), h("div", { class: "actions" }, readAll), msg, card(list, empty), await settings(ctx));
}

// Which kinds reach me: a muted kind sends no WeChat message and no live push (the
// in-app copy is kept, already read); safety and account kinds cannot be muted.
async function settings(ctx) {
  const prefs = await ctx.all("/notifications/preferences");
  const msg = notice();
  const rows = prefs.map((p) => {
    const box = h("input", { type: "checkbox", checked: !p.muted, disabled: p.mandatory, dataset: { pref: p.event_type } });
    box.addEventListener("change", async () => {
      try {
        await ctx.api(`/notifications/preferences/${encodeURIComponent(p.event_type)}`, { method: "PUT", json: { muted: !box.checked } });
        msg.show(t("messages.saved"), "ok");
      } catch (err) {
        box.checked = !box.checked;
        msg.error(err);
      }
    });
    return h("label", { class: "choice" }, box, lang() === "en" ? p.title_en : p.title_zh, p.mandatory ? h("span", { class: "sub" }, t("messages.mandatory")) : null);
  });
  const titles = new Map(prefs.map((p) => [p.event_type, lang() === "en" ? p.title_en : p.title_zh]));
  return card(
    h("details", {}, h("summary", { class: "summary" }, t("messages.settings")), h("p", { class: "hint" }, t("messages.settings.lead")), ...rows, msg),
    await subscriptions(ctx, titles),
  );
}

// WeChat delivers a subscribe message only once per "allow" tap (one-time quota): the
// mini-program asks with wx.requestSubscribeMessage and reports each answer to the API.
async function subscriptions(ctx, titles) {
  const templates = await ctx.all("/me/subscriptions");
  if (!templates.length) return null;
  const msg = notice();
  const rows = templates.map((tq) => {
    const what = tq.event_types.map((e) => titles.get(e) || e).join(lang() === "en" ? ", " : "、");
    const answer = async (accept) => {
      try {
        await requestSubscribe(tq.template_id, accept); // WeChat's own sheet
        const out = await ctx.api("/me/subscriptions", { method: "POST", json: { template_id: tq.template_id, accepted: accept } });
        left.textContent = t(out.refused ? "wx.refused" : "wx.quota", { n: out.quota });
      } catch (err) {
        msg.error(err);
      }
    };
    const left = h("span", { class: "sub", dataset: { quota: tq.template_id } }, t(tq.refused ? "wx.refused" : "wx.quota", { n: tq.quota }));
    return h(
      "li",
      { class: "row-block", dataset: { template: tq.template_id } },
      h("p", { class: "row-main" }, what, left),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "btn btn-secondary btn-small", "aria-label": t("wx.allow.label", { what }), onclick: () => answer(true) }, t("wx.allow")),
        h("button", { type: "button", class: "btn btn-plain btn-small", "aria-label": t("wx.refuse.label", { what }), onclick: () => answer(false) }, t("wx.refuse")),
      ),
    );
  });
  return h("details", {}, h("summary", { class: "summary" }, t("wx.title")), h("p", { class: "hint" }, t("wx.lead")), h("ul", { class: "list" }, rows), msg);
}
