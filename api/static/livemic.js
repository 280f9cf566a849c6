// Live transcription from the microphone over `WS /v1/live` (README "Browser"): the audio goes
// out as the browser records it, the server answers with provisional text (`partial`, shown
// grey and italic, replaced by the next one) and finished segments (`final`, kept); Stop sends
// `stop`, and `done` brings the job's download links.
"use strict";

const LIVE_MIME = "audio/webm;codecs=opus";
const LIVE_CHUNK_MS = 250;  // a chunk's wait is latency; smaller chunks cost more frames
const LIVE_PCM_RATE = 16000;  // what the server decodes at: no resampling on either side
const LIVE_FORMATS = ["txt", "srt", "vtt", "json", "tsv"];

const canRecordWebm = () => Boolean(window.MediaRecorder?.isTypeSupported(LIVE_MIME));

// Whether this browser can stream: WebM/Opus from MediaRecorder, else PCM from an AudioWorklet.
function liveSupported() {
  return Boolean(window.WebSocket && navigator.mediaDevices?.getUserMedia
    && (canRecordWebm() || window.AudioWorkletNode));
}

function liveUrl() {
  const url = new URL("/v1/live", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  // A WebSocket cannot send headers: the API key (keys.js) goes as `access_token`.
  const keyed = new URL(window.verbatimKeys.withToken(url.pathname), location.href);
  url.search = keyed.search;
  return url.href;
}

// MediaRecorder's WebM/Opus: the first chunk holds the header, later ones continue it.
class WebmCapture {
  constructor(stream) {
    this.recorder = new MediaRecorder(stream, { mimeType: LIVE_MIME });
  }

  get format() { return { encoding: "webm_opus" }; }

  start(send) {
    this.recorder.ondataavailable = (event) => { if (event.data.size) send(event.data); };
    this.recorder.start(LIVE_CHUNK_MS);
  }

  // Calls `done` after the last chunk went to `send`.
  stop(done) {
    if (this.recorder.state === "inactive") return;
    this.recorder.onstop = done;
    this.recorder.stop();
  }

  cancel() {
    this.recorder.ondataavailable = null;
    this.recorder.onstop = null;
    if (this.recorder.state !== "inactive") this.recorder.stop();
  }
}

// Raw pcm_s16le from an AudioWorklet (pcm-worklet.js), for browsers that record no WebM/Opus.
class PcmCapture {
  static async open(stream) {
    let context;
    try {
      context = new AudioContext({ sampleRate: LIVE_PCM_RATE });
    } catch {
      context = new AudioContext();  // the device's rate; the server resamples 8-48 kHz
    }
    await context.audioWorklet.addModule("/static/pcm-worklet.js");
    return new PcmCapture(context, stream);
  }

  constructor(context, stream) {
    this.context = context;
    this.source = context.createMediaStreamSource(stream);
    this.node = new AudioWorkletNode(context, "pcm-capture", {
      numberOfOutputs: 0, processorOptions: { chunkMs: LIVE_CHUNK_MS / 2 },
    });
  }

  get format() { return { encoding: "pcm_s16le", sample_rate: this.context.sampleRate }; }

  start(send) {
    this.node.port.onmessage = (event) => {
      if (event.data === "flushed") this.finished?.();
      else send(event.data);
    };
    this.source.connect(this.node);
    this.context.resume();  // a context made after an await may start suspended
  }

  stop(done) {
    this.finished = () => { this.cancel(); done(); };
    this.node.port.postMessage("flush");
  }

  cancel() {
    if (this.closed) return;
    this.closed = true;
    this.node.port.onmessage = null;
    this.source.disconnect();
    this.context.close();
  }
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
    try {
      this.capture = canRecordWebm()
        ? new WebmCapture(this.stream) : await PcmCapture.open(this.stream);
    } catch (err) {
      this.fail("no_microphone", err.message);
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
      type: "start", ...this.capture.format, language: this.options.language,
      task: this.options.task, word_timestamps: true,
      ...(this.options.model ? { model: this.options.model } : {}),
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
    this.recording = true;
    this.capture.start((chunk) => {
      // Sent in order, before the `stop` that follows them (Blobs included).
      if (this.socket.readyState === WebSocket.OPEN) this.socket.send(chunk);
    });
    const started = Date.now();
    const time = document.getElementById("live-time");
    time.textContent = "0:00";
    const tick = () => { time.textContent = this.show.clock((Date.now() - started) / 1000); };
    this.timer = setInterval(tick, 250);
    this.setStatus("Listening… speak, and the text appears as you talk.");
    document.getElementById("live-stop").focus();
  }

  stop() {
    if (this.stopping || this.over) return;
    this.stopping = true;
    this.setStatus("Finishing the transcript…");
    document.getElementById("live-controls").hidden = true;
    clearInterval(this.timer);
    if (!this.recording) {
      this.end();  // stopped before the session started: nothing to keep
      return;
    }
    this.capture.stop(() => {
      this.stream.getTracks().forEach((track) => track.stop());
      if (this.socket.readyState === WebSocket.OPEN) {
        this.socket.send(JSON.stringify({ type: "stop" }));
      }
    });
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
    if (message.code === "unauthorized" && !this.recording && !this.stopping) {
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

  // Over, whichever way: the socket is closed, the microphone let go, the page usable again.
  end() {
    if (this.over) return;
    this.over = true;
    clearInterval(this.timer);
    this.capture?.cancel();
    this.stream?.getTracks().forEach((track) => track.stop());
    document.getElementById("live-controls").hidden = true;
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close();
    this.show.ended();
  }
}
