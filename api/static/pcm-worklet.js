// The audio thread's side of PcmCapture (livemic.js): the microphone's samples as 16-bit
// little-endian PCM, posted to the page in chunks of `chunkMs`; "flush" posts the rest.
"use strict";

class PcmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    // `sampleRate` is the AudioWorkletGlobalScope's: the context's rate.
    this.chunk = new Int16Array(Math.round(sampleRate * options.processorOptions.chunkMs / 1000));
    this.filled = 0;
    this.port.onmessage = (event) => {
      if (event.data !== "flush") return;
      this.post();
      this.port.postMessage("flushed");
    };
  }

  process(inputs) {
    const samples = inputs[0]?.[0];  // the first channel: speech needs no stereo
    if (!samples) return true;
    for (let i = 0; i < samples.length; i++) {
      const clipped = Math.max(-1, Math.min(1, samples[i]));
      this.chunk[this.filled++] = clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff;
      if (this.filled === this.chunk.length) this.post();
    }
    return true;
  }

  post() {
    if (!this.filled) return;
    // Int16Array is in the platform's byte order, little-endian on every browser's platforms.
    const bytes = this.chunk.slice(0, this.filled).buffer;
    this.port.postMessage(bytes, [bytes]);
    this.filled = 0;
  }
}

registerProcessor("pcm-capture", PcmCapture);
