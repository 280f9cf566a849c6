// Verbatim's page: pick or record audio, submit a job, follow its progress, read the transcript.
"use strict";

// The codes the API accepts (shared/languages.py); the browser supplies their names.
const LANGUAGES = ("af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo " +
  "fr gl gu ha haw he hi hr ht hu hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk " +
  "ml mn mr ms mt my ne nl nn no oc pa pl ps pt ro ru sa sd si sk sl sn so sq sr su sv sw ta " +
  "te tg th tk tl tr tt uk ur uz vi yi yo zh yue").split(" ");
const POLL_MS = 750;
const MAX_POLL_FAILURES = 8;  // about ten seconds of lost connection before giving up
const RECORDING_TYPES = [
  ["audio/webm;codecs=opus", "webm"], ["audio/ogg;codecs=opus", "ogg"], ["audio/mp4", "m4a"],
];

// One sentence per stable error code (README "Every error has one shape"); `name` is the upload.
const MESSAGES = {
  empty_file: (name) => `“${name}” is empty: there is nothing to transcribe.`,
  unsupported_media: (name) => `“${name}” is not an audio or video file that Verbatim can read.`,
  payload_too_large: () => "The file is larger than this server accepts.",
  duration_exceeded: () => "The recording is longer than this server accepts.",
  not_multichannel: (name) => `“${name}” has one channel: choose “Tell voices apart” for it.`,
  validation_error: () => "The server did not accept the request.",
  service_unavailable: () => "The transcription service is busy or down. Try again in a minute.",
  job_not_found: () => "This job no longer exists; finished jobs are kept only for a while.",
  decode_error: () => "The audio could not be decoded.",
  transcription_error: () => "The transcription failed.",
  model_unavailable: () => "The speech model is not available on the server.",
  too_many_attempts: () => "The job was tried several times and kept failing, so it was stopped.",
  internal_error: () => "Something went wrong on the server.",
  network: () => "Could not reach the server. Check your connection and try again.",
  unauthorized: () => "This server needs an API key; submit again to enter one.",
  rate_limited: () => "Too many jobs were submitted with this key; wait a minute and try again.",
  too_many_active_jobs: () => "This key has as many jobs running as it may; wait for one to finish.",
  quota_exceeded: () => "This key has used its audio hours for today.",
  microphone_blocked: () =>
    "Microphone access was blocked. Allow it in the browser's site settings, or upload a file.",
  no_microphone: () => "No microphone could be opened. Connect one, or upload a file instead.",
  no_live_worker: () => "No live transcription worker is free right now. Try again shortly.",
  live_worker_lost: () => "The live transcription worker stopped; what was final is kept.",
  backlog_exceeded: () => "The server could not keep up with the live audio, so it stopped.",
  session_too_long: () => "The live session reached the longest this server allows.",
  idle_timeout: () => "No audio arrived for a while, so the live session ended.",
  unsupported_encoding: () => "The server cannot decode the audio this browser records.",
};

const $ = (id) => document.getElementById(id);
const languageNames = new Intl.DisplayNames(["en"], { type: "language" });
const state = { source: null, previewUrl: null, recorder: null, busy: false, live: null };

class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

function languageName(code) {
  if (code === "jw") return "Javanese";  // Whisper's code; ISO 639-1 says "jv"
  try { return languageNames.of(code) || code; } catch { return code; }
}

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const [h, m, sec] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return `${h ? h + ":" : ""}${mm}:${String(sec).padStart(2, "0")}`;
}

function fileSize(bytes) {
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- Choosing what to transcribe -------------------------------------------------------------

function choose(blob, name, seconds) {
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.source = blob ? { blob, name } : null;
  $("error").hidden = true;  // a new choice replaces whatever went wrong with the last one
  state.previewUrl = seconds === undefined || !blob ? null : URL.createObjectURL(blob);
  if (!blob || seconds !== undefined) $("file").value = "";
  $("chosen").hidden = !blob;
  $("preview").hidden = !state.previewUrl;
  if (state.previewUrl) $("preview").src = state.previewUrl;
  else $("preview").removeAttribute("src");
  if (blob) {
    const length = seconds === undefined ? "" : ` · ${clock(seconds)}`;
    $("chosen-name").textContent = `${name} · ${fileSize(blob.size)}${length}`;
  }
}

function setUpDropzone() {
  const zone = $("dropzone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) choose(file, file.name);
  });
}

function setUpMicrophone() {
  $("live").disabled = !liveSupported();  // livemic.js
  if (navigator.mediaDevices?.getUserMedia && window.MediaRecorder) return;
  $("record").disabled = true;
  $("mic-note").hidden = false;
  $("mic-note").textContent = window.isSecureContext
    ? "This browser cannot record audio here; upload a file instead."
    : "Recording needs a secure page (https:// or localhost); you can still upload a file.";
}

async function startRecording() {
  let stream;
  $("record").disabled = true;  // one take at a time, even while the browser asks permission
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    $("record").disabled = false;
    showError(err.name === "NotAllowedError"
      ? "Microphone access was blocked. Allow it in the browser's site settings, or upload a file."
      : "No microphone could be opened. Connect one, or upload a file instead.", err.message);
    return;
  }
  const [mimeType, extension] =
    RECORDING_TYPES.find(([type]) => MediaRecorder.isTypeSupported(type)) || ["", "webm"];
  const recorder = new MediaRecorder(stream, mimeType ? { mimeType } : {});
  const chunks = [];
  const started = Date.now();
  const elapsed = () => (Date.now() - started) / 1000;
  const timer = setInterval(() => { $("record-time").textContent = clock(elapsed()); }, 250);
  recorder.ondataavailable = (event) => { if (event.data.size) chunks.push(event.data); };
  recorder.onstop = () => {
    clearInterval(timer);
    stream.getTracks().forEach((track) => track.stop());
    const blob = new Blob(chunks, { type: recorder.mimeType || mimeType || "audio/webm" });
    choose(blob, `recording.${extension}`, elapsed());
    showRecording(false);
    $("record").disabled = false;
    $("record").focus();
  };
  state.recorder = recorder;
  recorder.start(1000);  // a chunk a second, so a long take never sits in one buffer
  $("record-time").textContent = "0:00";
  showRecording(true);
  $("stop").focus();
}

// Live transcription (livemic.js): the page's other actions wait until it is over.
function startLive() {
  if (state.busy || state.live || state.recorder?.state === "recording") return;
  $("error").hidden = true;
  $("result").hidden = true;
  for (const id of ["live", "record", "submit"]) $(id).disabled = true;
  const options = { language: $("language").value, task: $("task").value };
  if ($("model").value) options.model = $("model").value;
  state.live = new LiveSession(options, {
    clock,
    error: (code, detail) => showError(
      MESSAGES[code]?.("The audio") || "The live transcription stopped.", detail),
    ended: () => {
      state.live = null;
      $("live").disabled = false;
      $("record").disabled = !(navigator.mediaDevices?.getUserMedia && window.MediaRecorder);
      $("submit").disabled = state.busy;
    },
  });
  state.live.start();
}

function showRecording(on) {
  $("record").hidden = on;
  $("recording").hidden = !on;
  $("submit").disabled = on || state.busy;
}

// ---- Talking to the API ----------------------------------------------------------------------

function apiError(status, body) {
  try {
    const error = JSON.parse(body).error;
    if (error?.code) return new ApiError(error.code, error.message || "", status);
  } catch { /* not our JSON envelope: a proxy page, say */ }
  return new ApiError("http", "", status);
}

// Every request carries the API key (keys.js); a 401 asks for one and sends again.
async function upload(form) {
  for (;;) {
    const sent = window.verbatimKeys.token();
    try {
      return await sendUpload(form);
    } catch (err) {
      if (err.status !== 401 || !(await window.verbatimKeys.ask(Boolean(sent)))) throw err;
    }
  }
}

function sendUpload(form) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();  // fetch() cannot report upload progress
    xhr.open("POST", "/v1/jobs");
    for (const [name, value] of Object.entries(window.verbatimKeys.headers())) {
      xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) showProgress("Uploading…", event.loaded / event.total);
    };
    xhr.upload.onload = () => showProgress("Checking the file…", 1);
    xhr.onload = () => (xhr.status === 202
      ? resolve(JSON.parse(xhr.responseText))
      : reject(apiError(xhr.status, xhr.responseText)));
    xhr.onerror = () => reject(new ApiError("network", "", 0));
    xhr.send(form);
  });
}

async function getJSON(url) {
  let response;
  try {
    response = await window.verbatimKeys.fetch(url, { cache: "no-store" });
  } catch {
    throw new ApiError("network", "", 0);
  }
  const body = await response.text();
  if (!response.ok) throw apiError(response.status, body);
  return JSON.parse(body);
}

async function follow(id) {
  const live = await followLive(id, { progress: showProgress, clock });  // live.js
  if (live?.status === "completed") return getJSON(`/v1/jobs/${encodeURIComponent(id)}`);
  if (live?.status === "failed") throw new ApiError(live.error.code, live.error.message, 0);
  if (live?.status === "deleted") throw new ApiError("job_not_found", live.error.message, 404);
  let failures = 0;  // no live events: poll the job
  for (;;) {
    let job;
    try {
      job = await getJSON(`/v1/jobs/${encodeURIComponent(id)}`);
      failures = 0;
    } catch (err) {
      if (err.code !== "network" || ++failures > MAX_POLL_FAILURES) throw err;
      showProgress("Connection lost; trying again…", null);
      await sleep(POLL_MS * 2);
      continue;
    }
    if (job.status === "completed") return job;
    if (job.status === "failed") {
      throw new ApiError(job.error?.code || "failed", job.error?.message || "", 0);
    }
    if (job.status === "queued") showProgress("Waiting for a free worker…", null);
    else showProgress("Transcribing…", job.progress);
    await sleep(POLL_MS);
  }
}

async function run(work, name) {
  state.busy = true;
  $("submit").disabled = true;
  $("error").hidden = true;
  $("result").hidden = true;
  try {
    const job = await work();
    history.replaceState(null, "", `#job=${job.id}`);
    const finished = await follow(job.id);
    const transcript = await getJSON(`/v1/jobs/${encodeURIComponent(job.id)}/transcript.json`);
    showTranscript(finished, transcript);
  } catch (err) {
    $("progress-card").hidden = true;
    if (err.code === "job_not_found") history.replaceState(null, "", location.pathname);
    const friendly = err instanceof ApiError ? describe(err, name) : null;
    showError(friendly || "Something unexpected happened in the page.", err.message);
  } finally {
    state.busy = false;
    $("submit").disabled = Boolean(state.recorder && state.recorder.state === "recording");
  }
}

function describe(err, name) {
  const message = MESSAGES[err.code];
  if (message) return message(name || "The file");
  if (err.status) return `The server could not handle the request (HTTP ${err.status}).`;
  return "The job failed.";
}

function submit(event) {
  event.preventDefault();
  if (state.busy) return;
  if (!state.source) {
    showError("Choose an audio or video file, or record something, first.");
    $("file").focus();
    return;
  }
  const form = new FormData();
  form.append("language", $("language").value);
  form.append("task", $("task").value);
  if ($("model").value) form.append("model", $("model").value);
  form.append("word_timestamps", "true");  // player.js seeks to words; subtitles break between them
  if ($("diarize").value) form.append("diarize", $("diarize").value);
  if ($("sounds").value) form.append("sounds", $("sounds").value);  // the sdh cues need them
  form.append("file", state.source.blob, state.source.name);
  showProgress("Uploading…", 0);
  run(() => upload(form), state.source.name);
}

// ---- Showing what happens --------------------------------------------------------------------

function showProgress(phase, fraction) {
  $("progress-card").hidden = false;
  if ($("status").textContent !== phase) $("status").textContent = phase;  // announce changes only
  const bar = $("bar");
  bar.classList.toggle("indeterminate", fraction === null);
  if (fraction === null) {
    bar.removeAttribute("aria-valuenow");
    $("percent").textContent = "";
    return;
  }
  const percent = Math.round(fraction * 100);
  bar.setAttribute("aria-valuenow", String(percent));
  $("bar-fill").style.width = `${percent}%`;
  $("percent").textContent = `${percent}%`;
}

function showError(text, detail) {
  $("error").hidden = false;
  $("error-text").textContent = text;
  $("error-detail").textContent = detail ? `Details: ${detail}` : "";
}

function showTranscript(job, transcript) {
  $("progress-card").hidden = true;
  const list = $("segments");
  list.replaceChildren(...transcript.segments.map((segment) => segmentItem(segment, clock)));
  if (!transcript.segments.length) list.append(Object.assign(document.createElement("li"), {
    className: "empty", textContent: "No speech was found in this recording.",
  }));
  const language = transcript.language ? languageName(transcript.language) : "Unknown language";
  const task = job.options.task === "translate" ? " · translated to English" : "";
  $("result-meta").textContent = `${job.filename} · ${language} · ${clock(transcript.duration)}${task}`;
  const base = `/v1/jobs/${encodeURIComponent(job.id)}/transcript.`;
  document.querySelectorAll("#result .downloads [data-format]").forEach((link) => {
    link.href = window.verbatimKeys.withToken(base + link.dataset.format);  // links send no header
  });
  $("download-main").dataset.base = base;
  updateMainDownload();
  $("result").hidden = false;
  $("result-title").focus();
  window.VerbatimPlayer?.show(job, transcript);  // player.js: listen beside the transcript
  window.VerbatimSpeakers?.show(transcript, job);  // speakers.js: colours, names saved
}

function updateMainDownload() {
  const link = $("download-main");
  const format = $("format").value;
  link.textContent = `Download .${format}`;
  if (link.dataset.base) link.href = window.verbatimKeys.withToken(link.dataset.base + format);
  document.querySelectorAll(".other-formats [data-format]").forEach((other) => {
    other.hidden = other.dataset.format === format;  // already the main button
  });
}

function fillLanguages() {
  const options = LANGUAGES
    .map((code) => [code, languageName(code)])
    .sort((a, b) => a[1].localeCompare(b[1], "en"))
    .map(([code, name]) => new Option(name, code));
  $("language").append(...options);
}

// The models some live worker serves (GET /v1/models); quietly none when the list is
// unavailable (no key yet): the server's default is then used.
async function fillModels() {
  let list;
  try {
    const response = await fetch("/v1/models", { headers: window.verbatimKeys.headers() });
    if (!response.ok) return;
    list = await response.json();
  } catch {
    return;
  }
  const served = list.data.filter((model) => model.workers.length > 0);
  $("model").append(...served.map((model) => new Option(
    `${model.id}${model.multilingual ? "" : " (English only)"}${model.default ? " · default" : ""}`,
    model.id)));
}

function init() {
  fillLanguages();
  fillModels();
  setUpDropzone();
  setUpMicrophone();
  $("file").addEventListener("change", () => {
    const file = $("file").files[0];
    if (file) choose(file, file.name);
  });
  $("record").addEventListener("click", startRecording);
  $("live").addEventListener("click", startLive);
  $("live-stop").addEventListener("click", () => state.live?.stop());
  $("stop").addEventListener("click", () => {
    if (state.recorder?.state === "recording") state.recorder.stop();
  });
  $("clear").addEventListener("click", () => choose(null));
  $("format").addEventListener("change", updateMainDownload);
  $("job-form").addEventListener("submit", submit);
  $("result-title").tabIndex = -1;
  // A reload (or a shared link) picks up the job in the address bar.
  const resume = () => {
    const resumed = location.hash.match(/^#job=([\w-]+)$/);
    if (resumed && !state.busy) run(async () => ({ id: resumed[1] }));
  };
  resume();
  window.addEventListener("hashchange", resume);  // player.js's recent jobs link here
}

init();
