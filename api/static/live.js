// Live transcript: a job's server-sent events (GET /v1/jobs/{id}/events, README "Following a
// job as it runs") shown as they come: each segment with its times, the progress bar moving.
"use strict";

// The one place the events URL is built: an EventSource cannot send headers, so the API key
// (keys.js) goes as the `access_token` parameter.
function eventsUrl(id) {
  const url = `/v1/jobs/${encodeURIComponent(id)}/events`;
  return window.verbatimKeys ? window.verbatimKeys.withToken(url) : url;
}

// Follows job `id` until it ends. `show.progress(phase, fraction)` and `show.clock(seconds)`
// come from app.js. Resolves with {status: "completed"}, {status: "failed" | "deleted", error},
// or null where live events cannot be had (no EventSource, or the server refused the stream):
// the caller then polls the job instead.
function followLive(id, show) {
  return new Promise((resolve) => {
    if (!window.EventSource) {
      resolve(null);
      return;
    }
    const list = document.getElementById("live-segments");
    list.replaceChildren();
    list.hidden = true;
    let progress = 0;
    const source = new EventSource(eventsUrl(id));
    const end = (outcome) => {
      source.close();
      list.hidden = true;  // the transcript, or the error, takes its place
      list.replaceChildren();
      resolve(outcome);
    };
    const on = (name, handle) => source.addEventListener(name, (message) => {
      handle(JSON.parse(message.data));
    });
    on("status", (data) => {
      if (data.status === "queued") show.progress("Waiting for a free worker…", null);
      else show.progress("Transcribing…", progress);
    });
    on("progress", (data) => {
      progress = data.progress;
      show.progress("Transcribing…", progress);
    });
    on("restart", () => {  // decoded again from the start: what came before is void
      list.replaceChildren();
      progress = 0;
      show.progress("Transcribing again…", 0);
    });
    on("segment", (segment) => {
      list.append(segmentItem(segment, show.clock));
      list.hidden = false;
    });
    on("completed", () => end({ status: "completed" }));
    on("failed", (data) => end({ status: "failed", error: data.error }));
    on("deleted", (data) => end({ status: "deleted", error: data.error }));
    source.onerror = () => {
      // CONNECTING: the browser reconnects by itself, sending the last event's id.
      if (source.readyState === EventSource.CLOSED) end(null);
      else show.progress("Connection lost; trying again…", null);
    };
  });
}

// One transcript line (its times and text): the live list and the finished transcript alike.
function segmentItem(segment, clock) {
  const item = document.createElement("li");
  item.dataset.id = String(segment.id);
  const time = document.createElement("span");
  time.className = "segment-time";
  time.textContent = `${clock(segment.start)} – ${clock(segment.end)}`;
  const text = document.createElement("p");
  text.className = "segment-text";
  text.textContent = segment.text.trim();
  item.append(time, text);
  return item;
}
