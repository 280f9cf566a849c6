// Speakers on the page (issue 21): each diarized segment shows its speaker in the speaker's
// colour, and a name typed for a speaker renames it at once on the page and in the download
// links (`speaker_names=S1=Ann`), then, once the field is left, is saved with the job
// (`PATCH /v1/jobs/{id}/speakers`), so that later downloads and a reload show it too.
"use strict";

(() => {
  const COLOURS = 6;  // .speaker-0 .. .speaker-5 in style.css, in turn
  let speakers = [];
  let jobId = null;
  let saving = Promise.resolve();  // saves run one after another, each sending what is new
  let waiting = 0;  // saves asked for and not yet done

  const byId = (id) => document.getElementById(id);
  const saved = (speaker) => speaker.name || speaker.label;

  function names() {
    return Object.fromEntries(speakers.map((speaker, index) => {
      const typed = byId(`speaker-name-${index}`)?.value.trim();
      return [speaker.label, typed || saved(speaker)];
    }));
  }

  // Every speaker chip shows the current name; every download link carries the names not
  // saved yet.
  function apply() {
    const shown = names();
    document.querySelectorAll("#segments .segment-speaker").forEach((chip) => {
      chip.textContent = shown[chip.dataset.label] || chip.dataset.label;
    });
    const renames = speakers
      .filter((speaker) => shown[speaker.label] !== saved(speaker))
      .map((speaker) => `${speaker.label}=${shown[speaker.label].replaceAll(",", " ")}`);
    document.querySelectorAll("#result .downloads a[href]").forEach((link) => {
      const url = new URL(link.href, location.href);
      if (renames.length) url.searchParams.set("speaker_names", renames.join(","));
      else url.searchParams.delete("speaker_names");
      link.href = url.pathname + url.search;
    });
  }

  function say(text) {
    const status = byId("speakers-status");
    if (status) status.textContent = text;
  }

  function saveSoon() {
    waiting += 1;
    saving = saving.then(save)
      .catch(() => say("The names could not be saved; the downloads still use them."))
      .finally(() => { waiting -= 1; });
  }

  // The names typed since the last save, saved with the job; an emptied field clears its name.
  async function save() {
    const changed = {};
    speakers.forEach((speaker, index) => {
      const typed = byId(`speaker-name-${index}`).value.trim();
      const wanted = typed && typed !== speaker.label ? typed : null;  // the label: no name
      if (wanted !== (speaker.name || null)) changed[speaker.label] = wanted;
    });
    if (!jobId || !Object.keys(changed).length) return;
    say("Saving the names…");
    let response;
    try {
      response = await window.verbatimKeys.fetch(
        `/v1/jobs/${encodeURIComponent(jobId)}/speakers`,
        { method: "PATCH", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ names: changed }) });
    } catch {
      say("The names could not be saved (no connection); the downloads still use them.");
      return;
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const reason = body?.error?.message || `HTTP ${response.status}`;
      say(`The names could not be saved: ${reason}`);
      return;
    }
    const named = Object.fromEntries(body.speakers.map((speaker) => [speaker.label, speaker.name]));
    speakers = speakers.map((speaker) => ({ ...speaker, name: named[speaker.label] ?? null }));
    speakers.forEach((speaker, index) => {
      const input = byId(`speaker-name-${index}`);
      if (input !== document.activeElement || !input.value.trim()) input.value = saved(speaker);
    });
    apply();
    if (waiting === 1) say("Names saved with the job.");  // none other queued behind this one
  }

  function chip(label, index) {
    const span = document.createElement("span");
    span.className = `segment-speaker speaker-${index % COLOURS}`;
    span.dataset.label = label;
    return span;
  }

  function editor() {
    const panel = document.createElement("fieldset");
    panel.id = "speakers";
    panel.className = "speakers";
    const legend = document.createElement("legend");
    legend.textContent = "Speakers: rename them (saved with the job)";
    const status = Object.assign(document.createElement("p"), {
      id: "speakers-status", className: "hint",
    });
    status.setAttribute("role", "status");
    panel.append(legend, ...speakers.map((speaker, index) => {
      const label = document.createElement("label");
      label.className = `speaker-field speaker-${index % COLOURS}`;
      const input = Object.assign(document.createElement("input"), {
        id: `speaker-name-${index}`, type: "text", maxLength: 60, value: saved(speaker),
      });
      input.setAttribute("aria-label", `Name for ${speaker.label}`);
      input.addEventListener("input", apply);
      input.addEventListener("change", saveSoon);  // left, or Enter pressed
      const talk = Math.round(speaker.talk_seconds);
      label.append(`${speaker.label} · ${talk} s`, input);
      return label;
    }), status);
    return panel;
  }

  // After app.js and player.js have drawn the transcript and set the download links.
  function show(transcript, job) {
    byId("speakers")?.remove();
    speakers = transcript.speakers || [];
    jobId = job?.id || null;
    if (!speakers.length) return;
    const index = Object.fromEntries(speakers.map((speaker, i) => [speaker.label, i]));
    const items = [...byId("segments").querySelectorAll("li:not(.empty)")];
    items.forEach((item, i) => {
      const label = transcript.segments[i]?.speaker;
      if (label === undefined || label === null) return;
      item.querySelector(".segment-time").append(chip(label, index[label] ?? 0));
    });
    byId("segments").before(editor());
    apply();
  }

  window.VerbatimSpeakers = { show };
})();
