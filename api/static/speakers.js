// Speakers on the page (issue 21): each diarized segment shows its speaker in the speaker's
// colour, and the names typed for the speakers rename them in every download
// (`speaker_names=S1=Ann,S2=Bob` on the links; the stored transcript keeps its labels).
"use strict";

(() => {
  const COLOURS = 6;  // .speaker-0 .. .speaker-5 in style.css, in turn
  let speakers = [];

  const byId = (id) => document.getElementById(id);

  function names() {
    return Object.fromEntries(speakers.map((speaker, index) => {
      const typed = byId(`speaker-name-${index}`)?.value.trim();
      return [speaker.label, typed || speaker.name || speaker.label];
    }));
  }

  // Every speaker chip shows the current name; every download link carries the renames.
  function apply() {
    const shown = names();
    document.querySelectorAll("#segments .segment-speaker").forEach((chip) => {
      chip.textContent = shown[chip.dataset.label] || chip.dataset.label;
    });
    const renames = speakers
      .filter((speaker) => shown[speaker.label] !== (speaker.name || speaker.label))
      .map((speaker) => `${speaker.label}=${shown[speaker.label].replaceAll(",", " ")}`);
    document.querySelectorAll("#result .downloads a[href]").forEach((link) => {
      const url = new URL(link.href, location.href);
      if (renames.length) url.searchParams.set("speaker_names", renames.join(","));
      else url.searchParams.delete("speaker_names");
      link.href = url.pathname + url.search;
    });
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
    legend.textContent = "Speakers: rename them for the downloads";
    panel.append(legend, ...speakers.map((speaker, index) => {
      const label = document.createElement("label");
      label.className = `speaker-field speaker-${index % COLOURS}`;
      const input = Object.assign(document.createElement("input"), {
        id: `speaker-name-${index}`, type: "text", maxLength: 60,
        value: speaker.name || speaker.label,
      });
      input.setAttribute("aria-label", `Name for ${speaker.label}`);
      input.addEventListener("input", apply);
      const talk = Math.round(speaker.talk_seconds);
      label.append(`${speaker.label} · ${talk} s`, input);
      return label;
    }));
    return panel;
  }

  // After app.js and player.js have drawn the transcript and set the download links.
  function show(transcript) {
    byId("speakers")?.remove();
    speakers = transcript.speakers || [];
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
