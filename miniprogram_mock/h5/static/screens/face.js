// Consent texts and face enrollment: from a photo file, or with the camera following the
// server's active-liveness challenge; guidance when a photo is refused; my enrollments.
import { uuid } from "../api.js";
import { errorText, has, lang, t } from "../i18n.js";
import { busy, card, chip, confirmButton, h, notice, screen, when } from "../ui.js";

const TONE = { pending: "wait", approved: "ok", rejected: "bad", removed: "plain" };
const STEP_MS = 350; // between frames while a move is asked
const FRAMES_PER_MOVE = 6; // 1 + 3 moves x 6 + 2 = 21 frames (the server takes up to 30)

function title(text) {
  return lang() === "en" ? text.title_en : text.title_zh;
}

function refusal(msg, err, live = false) {
  const tip = `tip.${err.code}`;
  msg.replaceChildren(h("strong", {}, t(live ? "face.refused.live" : "face.refused", { why: errorText(err) })));
  if (has(tip)) msg.append(h("span", { class: "tip" }, t(tip)));
  msg.dataset.tone = "error";
  msg.dataset.code = err.code || "";
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function grab(video, canvas) {
  const w = 480;
  const ratio = video.videoHeight / video.videoWidth || 0.75;
  canvas.width = w;
  canvas.height = Math.round(w * ratio);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
}

function cameraPanel(ctx, communityId, msg, after) {
  const video = h("video", { class: "preview", autoplay: true, playsinline: true, muted: true, "aria-label": t("cam.preview") });
  const prompt = h("p", { class: "prompt", role: "status", "aria-live": "assertive" });
  const canvas = h("canvas", { hidden: true });
  const start = h("button", { type: "button", class: "btn btn-primary btn-big", dataset: { camera: "start" } }, t("face.camera"));
  const box = h("div", { class: "camera", hidden: true }, video, prompt);
  start.addEventListener("click", async () => {
    const done = busy(start);
    msg.replaceChildren();
    delete msg.dataset.code;
    delete msg.dataset.tone; // a new try: the last one's verdict no longer stands
    let stream = null;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      msg.textContent = t("cam.insecure");
      msg.dataset.tone = "error";
      done();
      return;
    }
    try {
      const challenge = await ctx.api("/me/face/challenges", { method: "POST", json: { community_id: communityId } });
      try {
        stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "user", width: { ideal: 640 } }, audio: false });
      } catch (err) {
        msg.textContent = t("cam.denied", { why: err.name || String(err) });
        msg.dataset.tone = "error";
        return;
      }
      box.hidden = false;
      video.srcObject = stream;
      await video.play();
      const frames = [];
      prompt.textContent = t("cam.ready");
      prompt.dataset.action = "";
      await sleep(1200);
      frames.push(await grab(video, canvas));
      for (const action of challenge.actions) {
        prompt.textContent = t(`cam.${action}`);
        prompt.dataset.action = action; // the move asked now
        for (let i = 0; i < FRAMES_PER_MOVE; i++) {
          await sleep(STEP_MS);
          frames.push(await grab(video, canvas));
        }
        prompt.textContent = t("cam.ready");
        prompt.dataset.action = "";
        await sleep(600);
        frames.push(await grab(video, canvas));
      }
      prompt.textContent = t("cam.done");
      const form = new FormData();
      form.append("challenge_id", challenge.challenge_id);
      form.append("mirrored", "false"); // the frames are the camera's, not the mirrored preview
      frames.forEach((blob, i) => form.append("frames", blob, `frame-${i}.jpg`));
      await ctx.api("/me/face/enrollments/liveness", { method: "POST", form, idem: uuid() });
      msg.textContent = t("face.sent");
      msg.dataset.tone = "ok";
      after();
    } catch (err) {
      refusal(msg, err, true);
    } finally {
      if (stream) stream.getTracks().forEach((track) => track.stop());
      box.hidden = true;
      prompt.textContent = "";
      done();
    }
  });
  return h("div", {}, start, box, canvas);
}

function filePanel(ctx, communityId, msg, after) {
  const input = h("input", { type: "file", id: "face-file", accept: "image/jpeg,image/png,image/webp", "aria-describedby": "face-file-hint", dataset: { photo: "" } });
  input.addEventListener("change", async () => {
    const file = input.files && input.files[0];
    if (!file) return;
    msg.replaceChildren(t("face.uploading"));
    msg.dataset.tone = "info";
    delete msg.dataset.code;
    const form = new FormData();
    form.append("community_id", String(communityId));
    form.append("photo", file, file.name || "me.jpg");
    try {
      await ctx.api("/me/face/enrollments", { method: "POST", form, idem: uuid() });
      msg.replaceChildren(t("face.sent"));
      msg.dataset.tone = "ok";
      after();
    } catch (err) {
      if (err.code === "liveness_required") {
        msg.replaceChildren(t("face.liveness_required"));
        msg.dataset.tone = "error";
      } else refusal(msg, err);
    }
    input.value = "";
  });
  return h("div", { class: "field" },
    h("div", { class: "file-pick" }, h("label", { for: "face-file", class: "btn btn-secondary btn-big" }, t("face.file")), input),
    h("span", { class: "hint", id: "face-file-hint" }, t("face.file.hint")),
  );
}

export async function faceScreen(ctx) {
  const [memberships, names, texts, consents, enrollments] = await Promise.all([
    ctx.all("/me/memberships"),
    ctx.communityNames(),
    ctx.all("/faces/consent-texts"),
    ctx.all("/me/face/consents"),
    ctx.all("/me/face/enrollments"),
  ]);
  // Consent and enrollment are for a community the resident lives in (an approved home).
  const ids = [...new Set(memberships.filter((m) => m.state === "approved").map((m) => m.community_id))];
  if (!ids.length) {
    const waiting = memberships.some((m) => m.state === "pending");
    return screen(
      t("face.title"),
      card(
        h("p", {}, t(waiting ? "face.wait" : "home.nohome")),
        waiting ? null : h("a", { class: "btn btn-primary", href: "#/join" }, t("home.join")),
      ),
    );
  }
  const chosen = Number(sessionStorage.getItem("anxin.h5.faceCommunity")) || ids[0];
  const cid = ids.includes(chosen) ? chosen : ids[0];
  const picker = ids.length > 1
    ? field(t("face.community"), h("select", { onchange: (e) => { sessionStorage.setItem("anxin.h5.faceCommunity", e.target.value); ctx.rerender(); } }, ids.map((id) => h("option", { value: id, selected: id === cid }, ctx.communityName(names.get(id))))))
    : h("p", { class: "sub" }, ctx.communityName(names.get(cid)));

  const active = consents.filter((c) => c.community_id === cid && !c.withdrawn_at);
  const current = (text) => active.some((c) => c.purpose === text.purpose && c.version === text.version);
  const missing = texts.filter((text) => !current(text));
  const msg = notice();

  // Consent: each text ticked on its own (an affirmative act per purpose).
  let consentCard;
  if (missing.length) {
    const boxes = missing.map((text) =>
      h("div", { class: "consent" },
        h("details", {}, h("summary", {}, title(text)), h("p", { class: "consent-text" }, lang() === "en" ? text.text_en : text.text_zh)),
        h("label", { class: "choice" }, h("input", { type: "checkbox", name: "purpose", value: text.purpose, dataset: { version: text.version } }), t("face.consent.agree", { title: title(text) })),
      ),
    );
    const submit = h("button", { type: "submit", class: "btn btn-primary" }, t("face.consent.submit"));
    const form = h("form", { class: "form" }, ...boxes, submit, msg);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const picked = [...form.querySelectorAll("input[name=purpose]:checked")].map((box) => ({ purpose: box.value, version: Number(box.dataset.version) }));
      if (!picked.length) return msg.show(t("face.consent.pick"), "error");
      const done = busy(submit);
      try {
        await ctx.api("/me/face/consents", { method: "POST", json: { community_id: cid, consents: picked } });
        ctx.rerender();
      } catch (err) {
        msg.error(err);
        done();
      }
    });
    consentCard = card(h("h2", {}, t("face.consent")), h("p", {}, t("face.consent.lead")), form);
  }
  const given = active.length
    ? h("div", {},
        h("p", { class: "sub" }, t("face.consent.given", { titles: active.map((c) => (lang() === "en" ? c.title_en : c.title_zh)).join(lang() === "en" ? "; " : "、") })),
        // Withdrawing deletes the face everywhere: a second tap confirms it.
        confirmButton(t("face.consent.withdraw"), t("face.consent.withdraw.confirm"), async () => {
          try {
            for (const c of active) await ctx.api(`/me/face/consents/${c.id}/withdraw`, { method: "POST" });
            ctx.rerender();
          } catch (err) {
            msg.error(err);
          }
        }),
        msg,
      )
    : null;

  const result = h("div", { class: "notice", role: "status", "aria-live": "polite", id: "face-result" });
  const refresh = () => setTimeout(() => ctx.rerender(), 1200);
  const enrollCard = active.length
    ? card(
        h("h2", {}, t("face.enroll")),
        given,
        cameraPanel(ctx, cid, result, refresh),
        filePanel(ctx, cid, result, refresh),
        result,
      )
    : null;

  const mine = enrollments.filter((e) => e.community_id === cid);
  const history = card(
    h("h2", {}, t("face.mine")),
    mine.length
      ? h("ul", { class: "list" }, mine.map((e) =>
          h("li", { class: "row", dataset: { enrollment: e.id, state: e.state } },
            h("span", { class: "row-main" }, t("face.submitted", { at: when(e.created_at) }), e.decision_reason ? h("span", { class: "sub" }, e.decision_reason) : null),
            chip(t(`face.state.${e.state}`), TONE[e.state]),
          )))
      : h("p", {}, t("home.face.none")),
  );
  return screen(t("face.title"), picker, consentCard, enrollCard, history);
}
