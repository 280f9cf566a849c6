// Listening to a finished job beside its transcript (issue 14): the segment being heard is
// highlighted and followed, a click on a segment or word seeks there, a search box finds words,
// and the subtitle downloads take the cue options (preset, line width, lines per cue).
"use strict";

const SUBTITLE_FORMATS = new Set(["srt", "vtt", "ass"]);
const CUE_PARAMETERS = ["preset", "max_line_width", "max_line_count"];
const player = { job: null, segments: [], words: [], current: null, spoken: null, matches: [],
  match: -1 };

const byId = (id) => document.getElementById(id);

// The one place the recording's address is made: a browser's <audio> cannot send headers, so
// any credential it needs has to travel in this URL.
function audioUrl(jobId) {
  return withToken(`/v1/jobs/${encodeURIComponent(jobId)}/audio`);
}

// keys.js adds the API key as `access_token` where the server asks for keys.
function withToken(url) {
  return window.verbatimKeys ? window.verbatimKeys.withToken(url) : url;
}

async function recordingAvailable(jobId) {
  try {
    const response = await fetch(audioUrl(jobId), { headers: { Range: "bytes=0-0" } });
    if (response.body) await response.body.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

// ---- The transcript, made to listen with ------------------------------------------------------

function wordSpans(segment) {
  return segment.words.map((word) => {
    const span = document.createElement("span");
    span.className = "word";
    span.textContent = word.word;
    span.dataset.start = String(word.start);
    span.dataset.end = String(word.end);
    return span;
  });
}

function decorateSegments(transcript) {
  const items = [...byId("segments").querySelectorAll("li:not(.empty)")];
  player.segments = items.map((item, index) => {
    const segment = transcript.segments[index];
    item.classList.add("segment");
    item.dataset.start = String(segment.start);
    item.dataset.end = String(segment.end);
    const text = item.querySelector(".segment-text");
    const words = segment.words?.length ? wordSpans(segment) : null;
    if (words) {
      text.replaceChildren(...words);
      words[0].textContent = words[0].textContent.trimStart();
    }
    return { item, text, start: segment.start, end: segment.end, words: words || [] };
  });
  player.words = player.segments.flatMap((segment) => segment.words);
}

function seek(seconds) {
  const audio = byId("player-audio");
  if (!audio || audio.hidden) return;
  audio.currentTime = seconds;
  highlight(seconds);
  audio.play().catch(() => { /* playback refused (no gesture): the seek still happened */ });
}

function onTranscriptClick(event) {
  const word = event.target.closest(".word");
  const segment = event.target.closest(".segment");
  if (word) seek(Number(word.dataset.start));
  else if (segment) seek(Number(segment.dataset.start));
}

// The last segment (or word) that has started by `seconds`, by binary search over starts.
function lastStarted(list, seconds) {
  let low = 0;
  let high = list.length - 1;
  let found = -1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const start = list[middle].start ?? Number(list[middle].dataset.start);
    if (start <= seconds) { found = middle; low = middle + 1; } else high = middle - 1;
  }
  return found;
}

function highlight(seconds) {
  const index = lastStarted(player.segments, seconds);
  const segment = index >= 0 && seconds < player.segments[index].end + 0.5
    ? player.segments[index] : null;
  if (segment !== player.current) {
    player.current?.item.classList.remove("current");
    player.current?.item.removeAttribute("aria-current");
    segment?.item.classList.add("current");
    segment?.item.setAttribute("aria-current", "true");
    if (segment && byId("player-follow").checked) segment.item.scrollIntoView({ block: "nearest" });
    player.current = segment;
  }
  const w = lastStarted(player.words, seconds);
  const word = w >= 0 && seconds < Number(player.words[w].dataset.end) + 0.3 ? player.words[w] : null;
  if (word !== player.spoken) {
    player.spoken?.classList.remove("spoken");
    word?.classList.add("spoken");
    player.spoken = word;
  }
}

// ---- Search --------------------------------------------------------------------------------------

function clearMarks() {
  byId("segments").querySelectorAll("mark").forEach((mark) => mark.replaceWith(...mark.childNodes));
  byId("segments").querySelectorAll(".segment-text").forEach((text) => text.normalize());
  byId("segments").querySelectorAll(".word.found").forEach((w) => w.classList.remove("found"));
}

function markIn(element, needle) {
  // Marks each occurrence inside the element's text nodes (words keep their own spans).
  const found = [];
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  for (const node of nodes) {
    let at = node.textContent.toLocaleLowerCase().indexOf(needle);
    let rest = node;
    while (at >= 0) {
      const hit = rest.splitText(at);
      rest = hit.splitText(needle.length);
      const mark = document.createElement("mark");
      hit.replaceWith(mark);
      mark.append(hit);
      found.push(mark);
      at = rest.textContent.toLocaleLowerCase().indexOf(needle);
    }
  }
  return found;
}

function search() {
  clearMarks();
  const needle = byId("player-search").value.trim().toLocaleLowerCase();
  player.matches = needle
    ? player.segments.flatMap((segment) => markIn(segment.text, needle)) : [];
  player.match = -1;
  const count = player.matches.length;
  byId("player-matches").textContent = needle ? `${count} match${count === 1 ? "" : "es"}` : "";
}

function nextMatch(event) {
  if (event.key !== "Enter" || !player.matches.length) return;
  event.preventDefault();
  player.matches[player.match]?.classList.remove("chosen");
  player.match = (player.match + (event.shiftKey ? -1 : 1) + player.matches.length)
    % player.matches.length;
  const mark = player.matches[player.match];
  mark.classList.add("chosen");
  mark.scrollIntoView({ block: "nearest" });
  const where = mark.closest(".word") || mark.closest(".segment");
  if (where) seek(Number(where.dataset.start));
}

// ---- Subtitle options on the downloads ---------------------------------------------------------

function cueOptions() {
  return [
    ["preset", byId("cue-preset").value],
    ["max_line_width", byId("cue-width").value.trim()],
    ["max_line_count", byId("cue-lines").value.trim()],
  ].filter(([, value]) => value);
}

// Sets the cue options on the subtitle links (keeping any other parameter, the key's).
function applySubtitleOptions() {
  const options = cueOptions();
  document.querySelectorAll("#result .downloads a[href]").forEach((link) => {
    const url = new URL(link.href, location.href);
    CUE_PARAMETERS.forEach((name) => url.searchParams.delete(name));
    if (SUBTITLE_FORMATS.has(url.pathname.split(".").pop())) {
      options.forEach(([name, value]) => url.searchParams.set(name, value));
    }
    link.href = url.pathname + url.search;
  });
}

// ---- Building it ---------------------------------------------------------------------------------

function buildControls() {
  if (byId("player")) return;
  const panel = document.createElement("div");
  panel.id = "player";
  panel.className = "player";
  panel.innerHTML = `
    <audio id="player-audio" controls preload="metadata" aria-label="The recording"></audio>
    <p id="player-note" class="hint" hidden></p>
    <div class="player-tools">
      <label class="search">Search
        <input id="player-search" type="search" autocomplete="off"
               aria-describedby="player-matches" placeholder="Find words">
      </label>
      <span id="player-matches" class="hint" aria-live="polite"></span>
      <label class="follow"><input id="player-follow" type="checkbox" checked>
        Follow playback</label>
    </div>`;
  const cues = document.createElement("fieldset");
  cues.className = "cue-options";
  cues.innerHTML = `
    <legend>Subtitle cues (.srt, .vtt, .ass)</legend>
    <label>Style
      <select id="cue-preset">
        <option value="">One cue per segment</option>
        <option value="broadcast" selected>Broadcast (42 columns, 2 lines, 7 s)</option>
        <option value="netflix">Streaming (42 columns, 2 lines, 20 characters/s)</option>
        <option value="mobile">Phone (32 columns, 2 lines, 6 s)</option>
        <option value="sdh">SDH: broadcast, with [MUSIC] cues</option>
      </select>
    </label>
    <label>Line width <input id="cue-width" type="number" min="8" max="1000" inputmode="numeric"
      placeholder="columns"></label>
    <label>Lines <input id="cue-lines" type="number" min="1" max="10" inputmode="numeric"
      placeholder="per cue"></label>`;
  const downloads = document.querySelector("#result .downloads");
  downloads.before(panel);
  downloads.after(cues);
  const ass = Object.assign(document.createElement("a"), { className: "button secondary",
    textContent: ".ass" });
  ass.dataset.format = "ass";
  ass.download = "";
  document.querySelector("#result .other-formats").append(ass);

  byId("segments").addEventListener("click", onTranscriptClick);
  byId("player-audio").addEventListener("timeupdate", (e) => highlight(e.target.currentTime));
  byId("player-audio").addEventListener("seeked", (e) => highlight(e.target.currentTime));
  byId("player-search").addEventListener("input", search);
  byId("player-search").addEventListener("keydown", nextMatch);
  cues.addEventListener("input", applySubtitleOptions);
  byId("format").addEventListener("change", applySubtitleOptions);  // after app.js sets hrefs
}

async function show(job, transcript) {
  buildControls();
  player.job = job;
  player.current = null;
  player.spoken = null;
  byId("player-search").value = "";
  byId("player-matches").textContent = "";
  decorateSegments(transcript);
  const ass = document.querySelector('#result .other-formats [data-format="ass"]');
  ass.href = withToken(`/v1/jobs/${encodeURIComponent(job.id)}/transcript.ass`);
  applySubtitleOptions();
  const audio = byId("player-audio");
  const kept = await recordingAvailable(job.id);
  listRecent();
  if (player.job !== job) return;  // another job was opened meanwhile
  audio.hidden = !kept;
  byId("player-note").hidden = kept;
  byId("result").classList.toggle("listening", kept);
  if (kept) audio.src = audioUrl(job.id);
  else {
    audio.removeAttribute("src");
    byId("player-note").textContent =
      "This server does not keep recordings (VERBATIM_KEEP_AUDIO is off), so only the " +
      "transcript can be shown.";
  }
}

window.VerbatimPlayer = { show, audioUrl };

// ---- Recent jobs, to reopen one ----------------------------------------------------------------

async function listRecent() {
  const headers = window.verbatimKeys ? window.verbatimKeys.headers() : {};
  let body;
  try {
    const response = await fetch("/v1/jobs?limit=10", { headers, cache: "no-store" });
    if (!response.ok) return;  // no key yet, or a server without the list: show nothing
    body = await response.json();
  } catch {
    return;
  }
  const section = byId("recent");
  const list = byId("recent-jobs");
  list.replaceChildren(...body.jobs.map((job) => {
    const link = Object.assign(document.createElement("a"), {
      href: `#job=${job.id}`, textContent: job.filename,
    });
    const when = Object.assign(document.createElement("span"), {
      className: "hint", textContent: ` · ${job.status} · ${new Date(job.created_at).toLocaleString()}`,
    });
    const item = document.createElement("li");
    item.append(link, when);
    return item;
  }));
  section.hidden = !body.jobs.length;
}

window.VerbatimPlayer.listRecent = listRecent;
document.addEventListener("DOMContentLoaded", listRecent);
