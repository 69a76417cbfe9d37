// Me: profile and phone (the WeChat phone button), links, language, data export, log out.
import { logout, phoneCode } from "../api.js";
import { lang, t } from "../i18n.js";
import { busy, card, confirmButton, field, h, notice, screen, when } from "../ui.js";
import { forget } from "../api.js";

function phoneSheet(ctx, msg) {
  // The fake WeChat's sheet: in WeChat the user taps "allow" on a number WeChat holds.
  const number = h("input", { type: "tel", inputmode: "tel", name: "phone", value: "13800138000", maxlength: 20 });
  const allow = h("button", { type: "submit", class: "btn btn-primary" }, t("me.phone.allow"));
  const sheet = h("form", { class: "sheet", hidden: true, "aria-label": t("me.phone.sheet") }, h("p", { class: "hint" }, t("me.phone.sheet")), field(t("me.phone.number"), number), allow);
  sheet.addEventListener("submit", async (event) => {
    event.preventDefault();
    const done = busy(allow);
    try {
      const code = await phoneCode(number.value.trim());
      await ctx.api("/me/phone", { method: "POST", json: { code } });
      msg.show(t("me.phone.done"), "ok");
      setTimeout(() => ctx.rerender(), 600);
    } catch (err) {
      msg.error(err);
      done();
    }
  });
  return sheet;
}

function exportCard(ctx) {
  const msg = notice();
  const button = h("button", { type: "button", class: "btn btn-secondary", dataset: { export: "" } }, t("me.export"));
  const out = h("div", {});
  button.addEventListener("click", async () => {
    const done = busy(button);
    try {
      const data = await ctx.api("/me/data-export");
      const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
      const link = h("a", { class: "btn btn-primary", href: URL.createObjectURL(blob), download: `anxin-my-data-${data.generated_at.slice(0, 10)}.json` }, t("me.export.file"));
      out.replaceChildren(h("p", {}, t("me.export.ready", { at: when(data.generated_at) })), h("p", { class: "hint" }, lang() === "en" ? data.note_en : data.note_zh), link);
    } catch (err) {
      msg.error(err);
    }
    done();
  });
  return card(h("h2", {}, t("me.export")), h("p", { class: "hint" }, t("me.export.lead")), button, out, msg);
}

function deleteCard(ctx) {
  const msg = notice("alert");
  return card(
    h("h2", {}, t("me.delete")),
    h("p", { class: "hint" }, t("me.delete.lead")),
    confirmButton(t("me.delete"), t("me.delete.confirm"), async () => {
      try {
        await ctx.api("/me", { method: "DELETE" });
        forget();
        window.dispatchEvent(new CustomEvent("anxin:logged-out"));
      } catch (err) {
        msg.error(err);
      }
    }),
    msg,
  );
}

export async function meScreen(ctx) {
  const me = await ctx.api("/me");
  const msg = notice();
  const sheet = phoneSheet(ctx, msg);
  const bind = h("button", { type: "button", class: "btn btn-secondary", dataset: { bindPhone: "" } }, t("me.phone.bind"));
  bind.addEventListener("click", () => {
    sheet.hidden = false;
    sheet.querySelector("input").focus();
  });
  const out = h("button", { type: "button", class: "btn btn-danger-outline" }, t("me.logout"));
  out.addEventListener("click", async () => {
    await logout();
    window.dispatchEvent(new CustomEvent("anxin:logged-out"));
  });
  const langButton = h("button", { type: "button", class: "btn btn-secondary", lang: lang() === "en" ? "zh-CN" : "en", onclick: () => ctx.switchLanguage() }, t("lang.switch"));
  return screen(
    t("me.title"),
    card(
      h("dl", { class: "details" },
        h("dt", {}, t("me.name")), h("dd", {}, me.name || "—"),
        h("dt", {}, t("me.phone")), h("dd", { dataset: { phone: me.phone || "" } }, me.phone || t("me.phone.none")),
      ),
      bind,
      sheet,
      msg,
    ),
    card(
      h("ul", { class: "menu" },
        h("li", {}, h("a", { href: "#/household" }, t("me.household"))),
        h("li", {}, h("a", { href: "#/face" }, t("me.face"))),
        h("li", {}, h("a", { href: "#/join" }, t("me.join"))),
      ),
    ),
    card(h("h2", {}, t("me.language")), langButton),
    exportCard(ctx),
    card(out),
    deleteCard(ctx),
  );
}
