// AudioWorklet player: PCM chunks posted from the page go into a ring buffer that the audio thread
// reads 128 frames at a time. Playback starts once 50 ms are buffered (or the take has ended); a
// buffer that runs dry before the end is an underrun, counted once per dry spell. The ring grows
// (it never drops audio) when a take arrives faster than it plays. Stats go back to the page.

class RingPlayer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ring = new Float32Array(1 << 16);
    this.read = 0;
    this.count = 0;
    this.prebuffer = Math.round(sampleRate * 0.05);
    this.clear();
    this.port.onmessage = (event) => this.onMessage(event.data);
  }

  clear() {
    this.read = 0;
    this.count = 0;
    this.playing = false;
    this.ended = false;
    this.dry = false;
    this.received = 0;
    this.played = 0;
    this.underruns = 0;
    this.lastReport = 0;
  }

  onMessage(msg) {
    if (msg.type === "push") {
      this.append(msg.samples);
      this.received += msg.samples.length;
    } else if (msg.type === "end") {
      this.ended = true;
    } else if (msg.type === "reset") {
      this.clear();
    }
    this.report(true);
  }

  append(samples) {
    if (this.count + samples.length > this.ring.length) this.grow(this.count + samples.length);
    let write = (this.read + this.count) % this.ring.length;
    let offset = 0;
    while (offset < samples.length) {
      const n = Math.min(samples.length - offset, this.ring.length - write);
      this.ring.set(samples.subarray(offset, offset + n), write);
      offset += n;
      write = (write + n) % this.ring.length;
    }
    this.count += samples.length;
  }

  grow(needed) {
    let size = this.ring.length;
    while (size < needed) size *= 2;
    const bigger = new Float32Array(size);
    const first = Math.min(this.count, this.ring.length - this.read);
    bigger.set(this.ring.subarray(this.read, this.read + first), 0);
    bigger.set(this.ring.subarray(0, this.count - first), first);
    this.ring = bigger;
    this.read = 0;
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    if (!this.playing && this.count > 0 && (this.count >= this.prebuffer || this.ended)) this.playing = true;
    let n = 0;
    if (this.playing) {
      n = Math.min(out.length, this.count);
      const first = Math.min(n, this.ring.length - this.read);
      out.set(this.ring.subarray(this.read, this.read + first), 0);
      out.set(this.ring.subarray(0, n - first), first);
      this.read = (this.read + n) % this.ring.length;
      this.count -= n;
      this.played += n;
      if (n < out.length && !this.ended && !this.dry) {
        this.underruns += 1;
        this.dry = true;
      } else if (n === out.length) {
        this.dry = false;
      }
      if (this.count === 0 && this.ended) this.playing = false;
    }
    out.fill(0, n);
    this.report(false);
    return true;
  }

  report(now) {
    if (!now && currentTime - this.lastReport < 0.05) return;
    this.lastReport = currentTime;
    this.port.postMessage({
      received: this.received, played: this.played, buffered: this.count, underruns: this.underruns,
      playing: this.playing, ended: this.ended,
    });
  }
}

registerProcessor("gsvd-player", RingPlayer);
