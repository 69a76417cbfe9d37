// An intercom call ringing in the page: accept (opens the door) or decline, answered
// over the realtime socket as the mini-program does, over HTTP when the socket is down.
import { api, uuid } from "./api.js";
import { errorText, t } from "./i18n.js";
import { busy, h } from "./ui.js";

let current = null; // the call shown now
let finishCurrent = null; // ends the shown call's buttons with a message

async function answer(ctx, call, action) {
  const id = uuid();
  const reply = await ctx.socket?.ask({ type: `intercom.${action}`, call_id: call.id, id });
  if (reply) {
    if (reply.ok) return reply.data;
    const err = new Error(reply.error.code);
    err.body = { error: reply.error };
    throw err;
  }
  // No socket: the same answer over HTTP (accept carries an Idempotency-Key).
  return api(`/intercom/calls/${call.id}/${action}`, { method: "POST", idem: action === "accept" ? id : undefined });
}

export function showCall(ctx, call) {
  const dialog = document.getElementById("call-dialog");
  if (current && current.id === call.id) return;
  current = call;
  const status = h("p", { class: "notice", role: "status", "aria-live": "assertive" });
  const accept = h("button", { type: "button", class: "btn btn-primary btn-big", dataset: { callAccept: call.id } }, t("call.accept"));
  const decline = h("button", { type: "button", class: "btn btn-danger-outline btn-big", dataset: { callDecline: call.id } }, t("call.decline"));
  const close = h("button", { type: "button", class: "btn btn-plain", hidden: true }, t("close"));
  let answering = false;
  const finish = () => {
    accept.hidden = true;
    decline.hidden = true;
    close.hidden = false;
    close.focus();
  };
  finishCurrent = (text) => {
    if (answering || accept.hidden) return; // our own answer tells its own result
    status.textContent = text;
    finish();
  };
  accept.addEventListener("click", async () => {
    answering = true;
    const done = busy(accept, t("call.opening"));
    decline.disabled = true;
    try {
      const data = await answer(ctx, call, "accept");
      status.textContent = data.opened ? t("call.opened") : t("door.noanswer");
      status.dataset.tone = data.opened ? "ok" : "error";
    } catch (err) {
      status.textContent = errorText(err);
      status.dataset.tone = "error";
    }
    done();
    finish();
  });
  decline.addEventListener("click", async () => {
    answering = true;
    const done = busy(decline);
    accept.disabled = true;
    try {
      await answer(ctx, call, "decline");
      status.textContent = t("call.declined");
    } catch (err) {
      status.textContent = errorText(err);
      status.dataset.tone = "error";
    }
    done();
    finish();
  });
  close.addEventListener("click", () => {
    current = null;
    dialog.close();
  });
  dialog.replaceChildren(
    h("div", { class: "call" },
      h("span", { class: "call-icon", "aria-hidden": "true" }),
      h("h2", { id: "call-title" }, t("call.title")),
      h("p", { class: "call-where" }, t("call.where", { door: call.door, room: call.room })),
      h("div", { class: "call-actions" }, accept, decline),
      status,
      close,
    ),
  );
  dialog.dataset.call = String(call.id);
  if (!dialog.open) dialog.showModal();
  accept.focus();
  if (navigator.vibrate) navigator.vibrate([300, 200, 300]);
  // Nobody answered in time: the server ends the call; the dialog says so.
  const left = Date.parse(call.expires_at) - Date.now();
  setTimeout(() => {
    if (current && current.id === call.id && !accept.hidden) {
      status.textContent = t("call.ended");
      finish();
    }
  }, Math.max(1000, Math.min(left, 120000)));
  dialog.addEventListener("cancel", () => (current = null), { once: true });
}

// The server ends a call for everyone it rang (`intercom.ended`): another member
// answered, everyone declined, or nobody answered in time.
export function endCall(data) {
  if (!current || !data || current.id !== data.id || !finishCurrent) return;
  finishCurrent(data.state === "accepted" ? t("call.answered.other") : t("call.ended"));
}
