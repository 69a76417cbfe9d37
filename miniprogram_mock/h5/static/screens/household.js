// My household: members, the household door code, vehicles.
import { t } from "../i18n.js";
import { busy, card, field, h, notice, roomLabel, screen } from "../ui.js";

function codeCard(ctx, m) {
  const msg = notice();
  const input = h("input", { type: "password", inputmode: "numeric", pattern: "[0-9]{6,8}", maxlength: 8, autocomplete: "new-password", name: "code" });
  const fresh = h("button", { type: "button", class: "btn btn-secondary" }, t("household.code.new"));
  fresh.addEventListener("click", async () => {
    const done = busy(fresh);
    try {
      const out = await ctx.api(`/households/${m.room_id}/door-code/new`, { method: "POST" });
      msg.show(t("household.code.shown", { code: out.code }), "ok");
    } catch (err) {
      msg.error(err);
    }
    done();
  });
  const save = h("button", { type: "submit", class: "btn btn-secondary" }, t("household.code.save"));
  const form = h("form", { class: "inline-form" }, field(t("household.code.set"), input), save);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const done = busy(save);
    try {
      await ctx.api(`/households/${m.room_id}/door-code`, { method: "PUT", json: { code: input.value } });
      input.value = "";
      msg.show(t("household.code.saved"), "ok");
    } catch (err) {
      msg.error(err);
    }
    done();
  });
  const clear = h("button", { type: "button", class: "btn btn-link" }, t("household.code.clear"));
  clear.addEventListener("click", async () => {
    try {
      await ctx.api(`/households/${m.room_id}/door-code`, { method: "DELETE" });
      msg.show(t("household.code.cleared"), "ok");
    } catch (err) {
      msg.error(err);
    }
  });
  return h("div", { class: "sub-card" }, h("h3", {}, t("household.code")), h("p", { class: "hint" }, t("household.code.lead")), fresh, form, clear, msg);
}

function vehiclesCard(ctx, m, vehicles) {
  const msg = notice();
  const plate = h("input", { name: "plate", maxlength: 10, autocomplete: "off", autocapitalize: "characters" });
  const add = h("button", { type: "submit", class: "btn btn-secondary" }, t("household.plate.add"));
  const form = h("form", { class: "inline-form" }, field(t("household.plate"), plate), add);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const done = busy(add);
    try {
      await ctx.api(`/households/${m.room_id}/vehicles`, { method: "POST", json: { plate: plate.value } });
      ctx.rerender();
    } catch (err) {
      msg.error(err);
      done();
    }
  });
  return h(
    "div",
    { class: "sub-card" },
    h("h3", {}, t("household.vehicles")),
    vehicles.length
      ? h("ul", { class: "list" }, vehicles.map((v) =>
          h("li", { class: "row", dataset: { vehicle: v.id } },
            h("span", { class: "row-main plate" }, v.plate),
            h("button", {
              type: "button",
              class: "btn btn-plain",
              "aria-label": t("household.plate.remove", { plate: v.plate }),
              onclick: async () => {
                try {
                  await ctx.api(`/households/${m.room_id}/vehicles/${v.id}`, { method: "DELETE" });
                  ctx.rerender();
                } catch (err) {
                  msg.error(err);
                }
              },
            }, "✕"),
          )))
      : h("p", {}, t("none")),
    form,
    msg,
  );
}

export async function householdScreen(ctx) {
  const [memberships, names] = await Promise.all([ctx.all("/me/memberships"), ctx.communityNames()]);
  const approved = memberships.filter((m) => m.state === "approved");
  if (!approved.length) return screen(t("household.title"), card(h("p", {}, t("household.none")), h("a", { class: "btn btn-primary", href: "#/join" }, t("home.join"))));
  const cards = await Promise.all(approved.map(async (m) => {
    const [members, vehicles] = await Promise.all([
      ctx.all(`/households/${m.room_id}/members`),
      ctx.all(`/households/${m.room_id}/vehicles`),
    ]);
    return card(
      h("h2", {}, `${ctx.communityName(names.get(m.community_id))} ${roomLabel(m)}`),
      h("div", { class: "sub-card" },
        h("h3", {}, t("household.members")),
        h("ul", { class: "list" }, members.map((p) => h("li", { class: "row", dataset: { member: p.resident_id } }, h("span", { class: "row-main" }, p.name || "—"), h("span", { class: "sub" }, t(`role.${p.role}`))))),
      ),
      codeCard(ctx, m),
      vehiclesCard(ctx, m, vehicles),
    );
  }));
  return screen(t("household.title"), ...cards);
}
