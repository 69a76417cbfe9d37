// Visitor and delivery passes: list, create (window, uses, plate), the QR and the share
// link, uses, revoke. The QR is drawn by the server (segno), fetched with the token.
import { uuid } from "../api.js";
import { t } from "../i18n.js";
import { busy, card, chip, confirmButton, field, h, notice, screen, when } from "../ui.js";

const TONE = { active: "ok", revoked: "bad", exhausted: "plain", expired: "plain" };

async function approvedRooms(ctx) {
  return (await ctx.all("/me/memberships")).filter((m) => m.state === "approved");
}

export async function passesScreen(ctx) {
  const [passes, rooms] = await Promise.all([ctx.all("/passes"), approvedRooms(ctx)]);
  const actions = rooms.length
    ? h("div", { class: "actions" },
        h("a", { class: "btn btn-primary", href: "#/passes/new/visitor" }, t("passes.new.visitor")),
        h("a", { class: "btn btn-secondary", href: "#/passes/new/delivery" }, t("passes.new.delivery")),
      )
    : h("p", {}, t("passes.nohome"));
  const list = passes.length
    ? h("ul", { class: "list" }, passes.map((p) =>
        h("li", { class: "row", dataset: { pass: p.id } },
          h("a", { class: "row-main row-link", href: `#/passes/${p.id}` },
            `${p.visitor_name || t(`pass.kind.${p.kind}`)}`,
            h("span", { class: "sub" }, `${t(`pass.kind.${p.kind}`)} · ${t("pass.uses", { uses: p.uses, max: p.max_uses })} · ${t("pass.until", { at: when(p.valid_until) })}`),
          ),
          chip(t(`pass.state.${p.state}`), TONE[p.state]),
        )))
    : h("p", {}, t("passes.none"));
  return screen(t("passes.title"), actions, card(list));
}

export async function newPassScreen(ctx, [kind]) {
  const rooms = await approvedRooms(ctx);
  const room = h("select", { name: "room" }, rooms.map((m) => h("option", { value: m.room_id }, [m.building, m.unit, m.room].filter(Boolean).join(""))));
  const kindSel = h("select", { name: "kind" }, ["visitor", "delivery"].map((k) => h("option", { value: k, selected: k === kind }, t(`pass.kind.${k}`))));
  const name = h("input", { name: "visitor_name", maxlength: 32, required: kind === "visitor", autocomplete: "off" });
  const phone = h("input", { name: "visitor_phone", type: "tel", inputmode: "tel", maxlength: 20, autocomplete: "off" });
  const from = h("input", { name: "valid_from", type: "datetime-local" });
  const until = h("input", { name: "valid_until", type: "datetime-local" });
  const uses = h("input", { name: "max_uses", type: "number", inputmode: "numeric", min: 1, max: kind === "visitor" ? 20 : 10, value: kind === "visitor" ? 1 : 3 });
  const plate = h("input", { name: "plate", maxlength: 10, autocomplete: "off", autocapitalize: "characters" });
  const submit = h("button", { type: "submit", class: "btn btn-primary btn-big" }, t("pass.create"));
  const msg = notice("alert");
  const key = uuid(); // one pass per form, however often the button is tapped
  const form = h("form", { class: "form" },
    rooms.length > 1 ? field(t("household.title"), room) : null,
    field(t("pass.kind"), kindSel),
    field(t("pass.name"), name),
    field(t("pass.phone"), phone),
    field(t("pass.from"), from),
    field(t("pass.until.label"), until),
    field(t("pass.max"), uses),
    field(t("pass.plate"), plate),
    h("p", { class: "hint" }, t(`pass.bounds.${kind}`)),
    submit,
    msg,
  );
  kindSel.addEventListener("change", () => ctx.go(`/passes/new/${kindSel.value}`));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (kind === "visitor" && !name.value.trim()) {
      name.focus();
      return msg.show(t("pass.name"), "error");
    }
    const body = {
      kind,
      visitor_name: name.value.trim(),
      visitor_phone: phone.value.trim(),
      max_uses: uses.value ? Number(uses.value) : null,
      valid_from: from.value || null, // no offset: read in the community's time zone
      valid_until: until.value || null,
      plate: plate.value.trim() || null,
    };
    if (rooms.length > 1) body.room_id = Number(room.value);
    const done = busy(submit);
    try {
      const p = await ctx.api("/passes", { method: "POST", json: body, idem: key });
      ctx.go(`/passes/${p.id}`);
    } catch (err) {
      msg.error(err);
      done();
    }
  });
  if (!rooms.length) return screen(t("pass.new.title"), card(h("p", {}, t("passes.nohome"))));
  return screen(t(`passes.new.${kind}`), card(form));
}

export async function passScreen(ctx, [id]) {
  const p = await ctx.api(`/passes/${id}`);
  const qr = h("img", { class: "qr", alt: t("pass.qr", { name: p.visitor_name || t(`pass.kind.${p.kind}`) }), width: 240, height: 240, dataset: { token: p.token_chars } });
  // An <img> cannot send the Bearer token: fetch the PNG and show it from a blob: URL.
  ctx.api(`/passes/${p.id}/qr?format=png`, { raw: true })
    .then((r) => r.blob())
    .then((blob) => {
      qr.addEventListener("load", () => URL.revokeObjectURL(qr.src), { once: true });
      qr.src = URL.createObjectURL(blob);
    })
    .catch(() => (qr.alt = t("error.generic")));
  const url = new URL(p.share_url, location.origin).href;
  const link = h("input", { type: "text", readonly: true, value: url, class: "link", dataset: { share: "" } });
  const copied = notice();
  const copy = h("button", { type: "button", class: "btn btn-secondary" }, t("pass.copy"));
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(url);
    } catch {
      link.select();
      document.execCommand && document.execCommand("copy");
    }
    copied.show(t("pass.copied"), "ok");
  });
  const share = navigator.share
    ? h("button", { type: "button", class: "btn btn-secondary", onclick: () => navigator.share({ title: t("pass.share"), url }).catch(() => {}) }, t("pass.share.native"))
    : null;
  const msg = notice("alert");
  const revoke = p.state === "active"
    ? confirmButton(t("pass.revoke"), t("pass.revoke.confirm"), async () => {
        try {
          await ctx.api(`/passes/${p.id}/revoke`, { method: "POST" });
          msg.show(t("pass.revoked"), "ok");
          setTimeout(() => ctx.rerender(), 600);
        } catch (err) {
          msg.error(err);
        }
      })
    : null;
  const row = (label, value) => [h("dt", {}, label), h("dd", {}, value)];
  return screen(
    p.visitor_name || t(`pass.kind.${p.kind}`),
    card(
      h("div", { class: "qr-box" }, qr),
      h("p", { class: "center" }, chip(t(`pass.state.${p.state}`), TONE[p.state]), " ", h("span", { dataset: { uses: p.uses } }, t("pass.uses", { uses: p.uses, max: p.max_uses }))),
    ),
    p.state === "active"
      ? card(h("h2", {}, t("pass.share")), field(t("pass.link"), link), h("div", { class: "actions" }, copy, share), copied)
      : null,
    card(
      h("h2", {}, t("pass.details")),
      h("dl", { class: "details" },
        row(t("pass.kind"), t(`pass.kind.${p.kind}`)),
        row(t("pass.state"), t(`pass.state.${p.state}`)),
        row(t("pass.validity"), t("pass.window", { from: when(p.valid_from), until: when(p.valid_until) })),
        row(t("pass.max"), t("pass.uses", { uses: p.uses, max: p.max_uses })),
        row(t("pass.doors"), p.doors.length ? t("pass.doors.n", { n: p.doors.length }) : t("pass.doors.all")),
        p.plate ? row(t("household.plate"), p.plate) : null,
        p.visitor_phone ? row(t("pass.phone"), p.visitor_phone) : null,
      ),
    ),
    revoke ? card(revoke, msg) : msg,
  );
}
