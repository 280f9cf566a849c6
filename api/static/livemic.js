// Live transcription from the microphone over `WS /v1/live` (README "Live transcription"): the
// browser's MediaRecorder sends WebM/Opus chunks every 250 ms, the server answers with
// provisional text (`partial`, shown grey and italic, replaced by the next one) and finished
// segments (`final`, kept); Stop sends `stop`, and `done` brings the job's download links.
"use strict";

const LIVE_MIME = "audio/webm;codecs=opus";
const LIVE_CHUNK_MS = 250;  // a chunk's wait is latency; smaller chunks cost more frames
const LIVE_FORMATS = ["txt", "srt", "vtt", "json", "tsv"];

// Whether this browser can stream: a page that cannot says why and offers the upload instead.
function liveSupported() {
  return Boolean(window.WebSocket && window.MediaRecorder && navigator.mediaDevices?.getUserMedia
    && MediaRecorder.isTypeSupported(LIVE_MIME));
}

function liveUrl() {
  const url = new URL("/v1/live", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  // A WebSocket cannot send headers: the API key (keys.js) goes as `access_token`.
  const keyed = new URL(window.verbatimKeys.withToken(url.pathname), location.href);
  url.search = keyed.search;
  return url.href;
}

// One live session: `options` {language, task}; `show` from app.js: clock(seconds),
// error(code, message) and ended() once the session is over, whichever way.
class LiveSession {
  constructor(options, show) {
    this.options = options;
    this.show = show;
    this.lines = document.getElementById("live-lines");
    this.status = document.getElementById("live-status");
    this.provisional = null;
    this.stopping = false;
    this.over = false;
  }

  async start() {
    this.reset();
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      this.fail(err.name === "NotAllowedError" ? "microphone_blocked" : "no_microphone",
        err.message);
      return;
    }
    this.connect();
  }

  reset() {
    this.lines.replaceChildren();
    document.getElementById("live-downloads").hidden = true;
    document.getElementById("live-controls").hidden = false;
    document.getElementById("live-card").hidden = false;
    this.setStatus("Connecting…");
  }

  connect() {
    this.sentToken = window.verbatimKeys.token();
    this.socket = new WebSocket(liveUrl());
    this.socket.onopen = () => this.socket.send(JSON.stringify({
      type: "start", encoding: "webm_opus", language: this.options.language,
      task: this.options.task, word_timestamps: true,
    }));
    this.socket.onmessage = (message) => {
      if (typeof message.data === "string") this.handle(JSON.parse(message.data));
    };
    this.socket.onclose = (event) => {
      if (!this.over) this.fail("network", event.reason || `connection closed (${event.code})`);
    };
  }

  handle(message) {
    if (message.type === "started") this.record();
    else if (message.type === "partial") this.showPartial(message);
    else if (message.type === "final") this.showFinal(message.segment);
    else if (message.type === "done") this.finish(message);
    else if (message.type === "error") this.refused(message);
  }

  // Audio goes out only once the server has a session for it.
  record() {
    this.recorder = new MediaRecorder(this.stream, { mimeType: LIVE_MIME });
    this.recorder.ondataavailable = (event) => {
      if (event.data.size && this.socket.readyState === WebSocket.OPEN) {
        this.socket.send(event.data);  // Blobs are sent in order, before the `stop` after them
      }
    };
    this.recorder.onstop = () => {
      if (this.socket.readyState === WebSocket.OPEN) {
        this.socket.send(JSON.stringify({ type: "stop" }));
      }
    };
    this.recorder.start(LIVE_CHUNK_MS);
    const started = Date.now();
    const time = document.getElementById("live-time");
    time.textContent = "0:00";
    this.timer = setInterval(() => { time.textContent = this.show.clock((Date.now() - started) / 1000); }, 250);
    this.setStatus("Listening… speak, and the text appears as you talk.");
    document.getElementById("live-stop").focus();
  }

  stop() {
    if (this.stopping || this.over) return;
    this.stopping = true;
    this.setStatus("Finishing the transcript…");
    document.getElementById("live-controls").hidden = true;
    this.releaseMicrophone();
    if (!this.recorder) this.end();  // stopped before the session started: nothing to keep
  }

  showPartial(message) {
    const text = (message.text || "").trim();
    if (!text) {
      this.dropProvisional();
      return;
    }
    const item = segmentItem({ id: "partial", start: message.start, end: message.end, text },
      this.show.clock);  // live.js
    item.classList.add("provisional");
    if (this.provisional) this.provisional.replaceWith(item);
    else this.lines.append(item);
    this.provisional = item;
    item.scrollIntoView({ block: "nearest" });
  }

  showFinal(segment) {
    this.dropProvisional();
    const item = segmentItem(segment, this.show.clock);
    this.lines.append(item);
    item.scrollIntoView({ block: "nearest" });
  }

  dropProvisional() {
    this.provisional?.remove();
    this.provisional = null;
  }

  finish(message) {
    this.dropProvisional();
    this.end();
    const links = message.links || {};
    const base = `/v1/jobs/${encodeURIComponent(message.job_id)}/transcript.`;
    const nav = document.getElementById("live-downloads");
    nav.replaceChildren(...LIVE_FORMATS.map((format) => {
      const link = document.createElement("a");
      link.className = "button secondary";
      link.href = window.verbatimKeys.withToken(links[format] || base + format);
      link.download = "";
      link.textContent = `.${format}`;
      link.setAttribute("aria-label", `Download the live transcript as .${format}`);
      return link;
    }));
    nav.hidden = false;
    if (!this.lines.children.length) this.lines.append(Object.assign(document.createElement("li"), {
      className: "empty", textContent: "No speech was heard.",
    }));
    this.setStatus("Done. The transcript is kept as a job; download it below.");
  }

  // An `error` frame. A missing or refused key, before any audio went, asks for one and
  // connects again with the microphone still open.
  async refused(message) {
    if (message.code === "unauthorized" && !this.recorder && !this.stopping) {
      this.socket.onclose = null;
      this.socket.close();
      const given = await window.verbatimKeys.ask(Boolean(this.sentToken));
      if (this.over) return;  // stopped while the question was open
      if (given) {
        this.connect();
        return;
      }
    }
    this.fail(message.code, message.message);
  }

  fail(code, detail) {
    this.end();
    document.getElementById("live-card").hidden = true;
    this.show.error(code, detail);
  }

  setStatus(text) {
    if (this.status.textContent !== text) this.status.textContent = text;
  }

  releaseMicrophone() {
    clearInterval(this.timer);
    if (this.recorder?.state === "recording") this.recorder.stop();  // onstop sends `stop`
    this.stream?.getTracks().forEach((track) => track.stop());
  }

  // Over, whichever way: the socket is closed, the microphone let go, the page usable again.
  end() {
    if (this.over) return;
    this.over = true;
    if (this.recorder?.state === "recording") this.recorder.ondataavailable = null;
    this.releaseMicrophone();
    if (this.recorder) this.recorder.onstop = null;
    document.getElementById("live-controls").hidden = true;
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close();
    this.show.ended();
  }
}
