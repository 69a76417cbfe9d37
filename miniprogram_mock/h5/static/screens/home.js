// Log in; home (my homes, face state, doors I may open); find and join a home.
import { uuid } from "../api.js";
import { errorText, t } from "../i18n.js";
import { busy, card, chip, confirmButton, field, h, notice, roomLabel, screen } from "../ui.js";

const MS_TONE = { pending: "wait", approved: "ok", rejected: "bad", ended: "plain", suspended: "bad" };
const FACE_TONE = { pending: "wait", approved: "ok", rejected: "bad", removed: "plain" };

export async function loginScreen(ctx) {
  const msg = notice("alert");
  const button = h("button", { type: "button", class: "btn btn-primary btn-big", id: "login" }, t("login.button"));
  const other = h("button", { type: "button", class: "btn btn-link" }, t("login.switch"));
  const go = async (newUser) => {
    const done = busy(button, t("login.busy"));
    msg.clear();
    try {
      await ctx.loginNow({ newUser });
    } catch (err) {
      msg.error(err);
      done();
    }
  };
  button.addEventListener("click", () => go(false));
  other.addEventListener("click", () => go(true));
  return screen(
    t("login.title"),
    h("div", { class: "hero", "aria-hidden": "true" }),
    h("p", { class: "lead" }, t("login.lead")),
    button,
    msg,
    h("p", { class: "hint" }, t("login.demo")),
    other,
  );
}

export function membershipLine(ctx, names, m) {
  const c = names.get(m.community_id);
  return h(
    "li",
    { class: "row", dataset: { membership: m.id } },
    h("span", { class: "row-main" }, `${ctx.communityName(c)} ${roomLabel(m)}`, h("span", { class: "sub" }, t(`role.${m.role}`))),
    chip(t(`ms.${m.state}`), MS_TONE[m.state]),
  );
}

function doorRow(ctx, door) {
  const result = h("p", { class: "result", role: "status", "aria-live": "polite" });
  const button = h(
    "button",
    { type: "button", class: "btn btn-primary", "aria-label": t("door.open.label", { name: door.name }), dataset: { open: door.id } },
    t("door.open"),
  );
  button.addEventListener("click", async () => {
    const done = busy(button, t("door.opening"));
    result.textContent = "";
    delete result.dataset.tone;
    try {
      // One key per tap; api() sends it again if the network drops mid-request.
      const out = await ctx.api(`/doors/${door.id}/open`, { method: "POST", idem: uuid() });
      result.textContent = out.latency_ms != null ? t("door.opened.ms", { ms: Math.round(out.latency_ms) }) : t("door.opened");
      result.dataset.tone = "ok";
    } catch (err) {
      result.textContent = err.code === "door_no_ack" ? t("door.noanswer") : t("door.refused", { why: errorText(err) });
      result.dataset.tone = "error";
    }
    done();
  });
  return h(
    "li",
    { class: "door", dataset: { door: door.id } },
    h(
      "div",
      { class: "door-head" },
      h("span", { class: "row-main" }, door.name, h("span", { class: "sub" }, door.place || "")),
      chip(door.online ? t("door.online") : t("door.offline"), door.online ? "ok" : "plain"),
      button,
    ),
    result,
  );
}

export async function homeScreen(ctx) {
  const [memberships, names, enrollments, doors, invitations] = await Promise.all([
    ctx.all("/me/memberships"),
    ctx.communityNames(),
    ctx.all("/me/face/enrollments"),
    ctx.all("/doors"),
    ctx.all("/me/invitations"),
  ]);
  const live = memberships.filter((m) => m.state === "pending" || m.state === "approved");
  const homes = live.length
    ? h("ul", { class: "list" }, live.map((m) => membershipLine(ctx, names, m)))
    : h("p", {}, t("home.nohome"));
  const latest = enrollments[0];
  const faceCard = card(
    h("h2", {}, t("home.face")),
    latest
      ? h("p", { class: "row", dataset: { faceState: latest.state } }, chip(t(`face.state.${latest.state}`), FACE_TONE[latest.state]), latest.decision_reason ? h("span", { class: "sub" }, latest.decision_reason) : null)
      : h("p", {}, t("home.face.none")),
    h("a", { class: "btn btn-secondary", href: "#/face" }, latest ? t("home.face.view") : t("home.face.go")),
  );
  const pending = invitations.filter((i) => i.state === "pending" && !i.expired);
  const inviteCard = pending.length
    ? card(
        h("h2", {}, t("home.invitations")),
        h("ul", { class: "list" }, pending.map((i) => inviteRow(ctx, i))),
      )
    : null;
  return screen(
    t("home.title"),
    inviteCard,
    card(
      h("h2", {}, t("home.households")),
      homes,
      h("a", { class: "btn btn-secondary", href: "#/join" }, t("home.join")),
    ),
    faceCard,
    card(
      h("h2", {}, t("home.doors")),
      doors.length ? h("ul", { class: "list doors" }, doors.map((d) => doorRow(ctx, d))) : h("p", {}, t("home.doors.none")),
    ),
  );
}

function inviteRow(ctx, inv) {
  const msg = notice();
  const act = async (what) => {
    try {
      await ctx.api(`/me/invitations/${inv.id}/${what}`, { method: "POST" });
      ctx.rerender();
    } catch (err) {
      msg.error(err);
    }
  };
  return h(
    "li",
    { class: "row-block" },
    h("p", {}, t("invite.text", { community: inv.community || "", room: [inv.building, inv.unit, inv.room].filter(Boolean).join(""), role: t(`role.${inv.role}`) })),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", class: "btn btn-primary", onclick: () => act("accept") }, t("invite.accept")),
      h("button", { type: "button", class: "btn btn-plain", onclick: () => act("decline") }, t("invite.decline")),
    ),
    msg,
  );
}

export async function joinScreen(ctx) {
  const [names, memberships] = await Promise.all([ctx.communityNames(), ctx.all("/me/memberships")]);
  const community = h("select", { name: "community", required: true }, [...names.values()].map((c) => h("option", { value: c.id }, ctx.communityName(c))));
  const building = h("input", { name: "building", required: true, maxlength: 32, autocomplete: "off" });
  const unit = h("input", { name: "unit", required: true, maxlength: 32, autocomplete: "off" });
  const rooms = h("fieldset", { class: "rooms", hidden: true }, h("legend", {}, t("join.rooms")));
  const role = h("select", { name: "role" }, ["owner", "family", "tenant"].map((r) => h("option", { value: r }, t(`role.${r}`))));
  const note = h("input", { name: "note", maxlength: 200 });
  const submit = h("button", { type: "submit", class: "btn btn-primary btn-big", disabled: true }, t("join.submit"));
  const msg = notice("alert");
  const search = h("button", { type: "button", class: "btn btn-secondary" }, t("join.search"));

  search.addEventListener("click", async () => {
    msg.clear();
    if (!building.value.trim() || !unit.value.trim()) {
      (building.value.trim() ? unit : building).focus();
      return;
    }
    const done = busy(search);
    try {
      const q = new URLSearchParams({ building: building.value.trim(), unit: unit.value.trim() });
      const found = await ctx.all(`/communities/${community.value}/rooms?${q}`);
      rooms.replaceChildren(h("legend", {}, t("join.rooms")));
      if (!found.length) msg.show(t("join.norooms"), "error");
      for (const r of found) {
        rooms.append(h("label", { class: "choice" }, h("input", { type: "radio", name: "room", value: r.id, required: true }), r.number));
      }
      rooms.hidden = !found.length;
      submit.disabled = !found.length;
    } catch (err) {
      msg.error(err);
    }
    done();
  });

  const form = h(
    "form",
    { class: "form", novalidate: true },
    field(t("join.community"), community),
    field(t("join.building"), building, t("join.building.hint")),
    field(t("join.unit"), unit, t("join.unit.hint")),
    search,
    rooms,
    field(t("join.role"), role),
    field(t("join.note"), note),
    submit,
    msg,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const picked = form.querySelector("input[name=room]:checked");
    if (!picked) {
      msg.show(t("join.rooms"), "error");
      return;
    }
    const done = busy(submit);
    try {
      await ctx.api("/memberships", { method: "POST", json: { room_id: Number(picked.value), role: role.value, note: note.value } });
      msg.show(t("join.sent"), "ok");
      setTimeout(() => ctx.go("/"), 800);
    } catch (err) {
      msg.error(err);
      done();
    }
  });

  const mine = memberships.filter((m) => m.state !== "ended");
  return screen(
    t("join.title"),
    card(form),
    mine.length
      ? card(
          h("h2", {}, t("join.mine")),
          h("ul", { class: "list" }, mine.map((m) => {
            const line = membershipLine(ctx, names, m);
            if (m.state === "approved" || m.state === "pending") {
              const msg2 = notice();
              line.append(confirmButton(t("join.leave"), t("join.leave.confirm"), async () => {
                try {
                  await ctx.api(`/me/memberships/${m.id}/leave`, { method: "POST" });
                  ctx.rerender();
                } catch (err) {
                  msg2.error(err);
                }
              }), msg2);
            }
            return line;
          })),
        )
      : null,
  );
}
