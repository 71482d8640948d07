// What the browser knows about one live stream: each type's newest result, frame
// bookkeeping (seq gaps, client drops) and the figures a tile shows. Plain objects, not Vue
// state: they change on every message, and components sample them once a second instead.
import { TrackStore, overlayFor } from "./tracks.js";

// Seqs remembered to tell a new frame from another type's result for a frame already seen.
// Far more than results can be reordered by (workers drop frames older than about 1 s).
const SEQ_WINDOW = 256;
// Frame-to-paint delays kept for percentiles: about 8 s at 15 fps.
const DELAY_SAMPLES = 128;

export class StreamState {
  constructor(id) {
    this.id = id;
    this.reset();
  }

  reset() {
    this.firstSeq = null;
    this.maxSeq = null;
    this.seen = new Set();
    this.frames = 0; // distinct frames (seqs) received
    this.messages = 0; // every type's message counts
    this.painted = 0;
    this.clientDrops = 0; // received but never painted: decoder busy, or superseded
    this.missedBefore = 0; // seq gaps of earlier runs of the stream (see accept)
    this.byType = new Map(); // type -> newest result
    this.tracks = new TrackStore(); // tracks messages of `ei track`, per type
    this.latency = { sum: 0, pipeline: 0, n: 0 };
    this.delays = new Float64Array(DELAY_SAMPLES);
    this.delayCount = 0;
    this.last = null; // previous sample(): counters and time, for rates
  }

  /** Frames never received: gaps in the seq range seen so far (queue, worker or socket drops). */
  get missed() {
    if (this.maxSeq === null) return this.missedBefore;
    return this.missedBefore + (this.maxSeq - this.firstSeq + 1) - this.frames;
  }

  get drops() {
    return this.missed + this.clientDrops;
  }

  /**
   * Record a result. Returns "new" for a frame newer than any so far (worth decoding), "same"
   * for another type's result of a frame already here, "late" for an older frame (its boxes
   * still count; its picture is not drawn). `withFrame` false: a result that came as text,
   * without a JPEG (the server sends each frame's JPEG once, with its first result). It is
   * kept as its type's newest result but is no frame: never "new", never counted in `frames`;
   * "same" when its frame is here, else "late".
   */
  accept(result, nowEpochSeconds, withFrame = true) {
    const seq = result.seq;
    this.messages += 1;
    if (this.maxSeq !== null && seq < this.maxSeq - SEQ_WINDOW) {
      // Far behind: the stream restarted and counts from 0 again. Keep the drops tally.
      const missed = this.missed;
      const { painted, clientDrops } = this;
      this.reset();
      Object.assign(this, { missedBefore: missed, painted, clientDrops, messages: 1 });
    }
    const previous = this.byType.get(result.type);
    if (!previous || previous.seq <= seq) this.byType.set(result.type, result);
    this.latency.sum += nowEpochSeconds - result.ts_capture;
    this.latency.pipeline += result.ts_done - result.ts_capture;
    this.latency.n += 1;

    if (this.seen.has(seq)) return "same";
    if (!withFrame) return "late";
    this.seen.add(seq);
    this.frames += 1;
    if (this.maxSeq === null) {
      this.firstSeq = seq;
      this.maxSeq = seq;
      return "new";
    }
    if (seq < this.firstSeq) this.firstSeq = seq;
    if (seq <= this.maxSeq) return "late";
    this.maxSeq = seq;
    if (this.seen.size > 2 * SEQ_WINDOW) {
      for (const old of this.seen) if (old < seq - SEQ_WINDOW) this.seen.delete(old);
    }
    return "new";
  }

  /** Every type's newest detections, as drawn on the current picture. */
  detections() {
    const out = [];
    for (const [type, result] of this.byType) {
      for (const det of result.detections || []) out.push({ ...det, type });
    }
    return out;
  }

  /** What the painter draws: per type, the tracks that go with its frame, else its boxes. */
  overlay() {
    const out = [];
    for (const [type, result] of this.byType) {
      out.push(...overlayFor(result, this.tracks.pick(type, result.seq)));
    }
    return out;
  }

  types() {
    return [...this.byType.keys()].sort();
  }

  paintedAfter(delayMs) {
    this.delays[this.delayCount % DELAY_SAMPLES] = delayMs;
    this.delayCount += 1;
    this.painted += 1;
  }

  /** Frame-to-paint delay percentile (ms) over the recent paints; null before any. */
  delayPercentile(p) {
    const n = Math.min(this.delayCount, DELAY_SAMPLES);
    if (!n) return null;
    const sorted = Array.from(this.delays.subarray(0, n)).sort((a, b) => a - b);
    return sorted[Math.min(n - 1, Math.floor((p / 100) * n))];
  }

  /** Figures for display since the previous call (rates need two points in time). */
  sample(now) {
    const { frames, painted } = this;
    const dt = this.last ? (now - this.last.now) / 1000 : 0;
    const rate = (value, key) => (dt > 0 ? Math.max(0, value - this.last[key]) / dt : null);
    const lat = this.latency;
    const out = {
      fps: rate(frames, "frames"),
      paintFps: rate(painted, "painted"),
      latency: lat.n ? lat.sum / lat.n : null,
      pipeline: lat.n ? lat.pipeline / lat.n : null,
      frames,
      painted,
      drops: this.drops,
      detections: this.detections().length,
      types: this.types(),
      delayP50: this.delayPercentile(50),
      delayP95: this.delayPercentile(95),
    };
    this.latency = { sum: 0, pipeline: 0, n: 0 };
    this.last = { now, frames, painted };
    return out;
  }
}
