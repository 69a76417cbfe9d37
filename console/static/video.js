// Live view: WebRTC through the console's signalling routes (the ticket checked there),
// HLS (hls.js, or the browser's own player) when WebRTC is unavailable or fails.
(function () {
  "use strict";

  function csrf() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"]; }
    catch (e) { return ""; }
  }

  function post(url, fields) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf() },
      body: new URLSearchParams(fields)
    }).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    });
  }

  function iceGathered(pc) {
    return new Promise(function (resolve) {
      if (pc.iceGatheringState === "complete") { resolve(); return; }
      pc.addEventListener("icegatheringstatechange", function () {
        if (pc.iceGatheringState === "complete") { resolve(); }
      });
      setTimeout(resolve, 2000);
    });
  }

  function webrtc(box, video) {
    var pc = new RTCPeerConnection();
    box._pc = pc;
    pc.addEventListener("track", function (ev) {
      video.srcObject = ev.streams[0] || new MediaStream([ev.track]);
      video.play().catch(function () {});
    });
    return post(box.dataset.webrtc, { ticket: box.dataset.ticket }).then(function (offer) {
      return pc.setRemoteDescription({ type: "offer", sdp: offer.sdp })
        .then(function () { return pc.createAnswer(); })
        .then(function (answer) { return pc.setLocalDescription(answer); })
        .then(function () { return iceGathered(pc); })
        .then(function () {
          return post(box.dataset.webrtc + "/" + offer.session_id + "/answer",
                      { ticket: box.dataset.ticket, sdp: pc.localDescription.sdp });
        });
    });
  }

  function hls(box, video, status) {
    if (box._pc) { box._pc.close(); box._pc = null; }
    video.srcObject = null;
    box.dataset.mode = "hls";
    status.textContent = box.dataset.textHls;
    if (window.Hls && window.Hls.isSupported()) {
      var player = new window.Hls({ enableWorker: false, liveSyncDurationCount: 2 });
      player.loadSource(box.dataset.hls);
      player.attachMedia(video);
    } else {
      video.src = box.dataset.hls;
    }
    video.play().catch(function () {});
  }

  function start(box) {
    var video = box.querySelector("video");
    var status = box.querySelector("[data-status]");
    var protocols = (box.dataset.protocols || "").split(",");
    video.muted = true;
    video.addEventListener("playing", function () {
      box.dataset.playing = box.dataset.mode;
      if (box.dataset.mode === "webrtc") { status.textContent = box.dataset.textPlaying; }
    });
    var expiresIn = Number(box.dataset.expires) - Date.now();
    setTimeout(function () {
      if (box._pc) { box._pc.close(); }
      video.pause();
      video.removeAttribute("src");
      video.srcObject = null;
      status.textContent = box.dataset.textExpired;
      box.dataset.playing = "";
    }, Math.max(0, expiresIn));
    if (protocols.indexOf("webrtc") >= 0 && window.RTCPeerConnection) {
      box.dataset.mode = "webrtc";
      webrtc(box, video).catch(function () { hls(box, video, status); });
      setTimeout(function () {
        if (box.dataset.mode === "webrtc" && video.readyState < 2) { hls(box, video, status); }
      }, 10000);
    } else if (protocols.indexOf("hls") >= 0) {
      hls(box, video, status);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-player]").forEach(start);
  });
})();
