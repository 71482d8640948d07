// Draws one stream's frames and boxes on one canvas. At most one JPEG is decoding per canvas
// (a frame that arrives meanwhile is dropped: the next one is newer anyway) and at most one
// draw happens per animation frame, so a slow tab falls behind by skipping, never by queueing.

const FONT_PX = 12; // label text, CSS pixels
const LINE_PX = 2; // box outline, CSS pixels

export class FramePainter {
  /** `state` is the stream's StreamState: the boxes come from it, paints are counted in it. */
  constructor(canvas, state) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { alpha: false });
    this.state = state;
    this.decoding = false;
    this.ready = null; // {bitmap, arrivedAt}: decoded, waiting for the next animation frame
    this.shown = null; // the bitmap on the canvas, kept to redraw when boxes change
    this.raf = 0;
    this.closed = false;
  }

  /** A message from LiveFeed.listen. */
  offer({ kind, result, jpeg, arrivedAt, state }) {
    this.state = state; // a stream that went away and came back has a fresh state
    if (kind !== "new" || !jpeg) {
      // Another type's boxes (or a late frame's, or a result without its JPEG): same
      // picture, new overlay.
      if (this.shown) this.requestPaint();
      return;
    }
    if (this.decoding) {
      this.state.clientDrops += 1;
      return;
    }
    this.decoding = true;
    // The Blob is made here, only for frames that are decoded: it is the main thread's largest
    // JavaScript cost per message (profiled at 12 streams x 15 fps). Decoding straight to the
    // drawn size means less memory and a cheaper drawImage than full size.
    const blob = new Blob([jpeg], { type: "image/jpeg" });
    createImageBitmap(blob, { ...this.targetSize(result.frame), resizeQuality: "medium" })
      .then((bitmap) => {
        if (this.closed) {
          bitmap.close();
          return;
        }
        if (this.ready) {
          this.ready.bitmap.close(); // decoded but never painted: superseded
          this.state.clientDrops += 1;
        }
        this.ready = { bitmap, arrivedAt };
        this.requestPaint();
      })
      .catch(() => {
        this.state.clientDrops += 1; // not a decodable JPEG
      })
      .finally(() => {
        this.decoding = false;
      });
  }

  close() {
    this.closed = true;
    cancelAnimationFrame(this.raf);
    this.ready?.bitmap.close();
    this.shown?.close();
    this.ready = this.shown = null;
  }

  /** Canvas pixels for a frame: the displayed width times the pixel ratio, at most full size. */
  targetSize(frame) {
    const w = frame?.w || 4;
    const h = frame?.h || 3;
    const shown = this.canvas.clientWidth * (window.devicePixelRatio || 1);
    const width = Math.max(1, Math.round(shown > 0 ? Math.min(w, shown) : w));
    return { resizeWidth: width, resizeHeight: Math.max(1, Math.round((width * h) / w)) };
  }

  requestPaint() {
    if (!this.raf && !this.closed) this.raf = requestAnimationFrame(() => this.paint());
  }

  paint() {
    this.raf = 0;
    if (this.ready) {
      this.shown?.close();
      this.shown = this.ready.bitmap;
      this.draw();
      this.state.paintedAfter(performance.now() - this.ready.arrivedAt);
      this.ready = null;
    } else if (this.shown) {
      this.draw();
    }
  }

  draw() {
    const { canvas, ctx, shown } = this;
    if (canvas.width !== shown.width || canvas.height !== shown.height) {
      canvas.width = shown.width;
      canvas.height = shown.height;
    }
    ctx.drawImage(shown, 0, 0);
    // Canvas pixels per CSS pixel, so lines and text look the same on a tile and full size.
    const scale = canvas.clientWidth > 0 ? canvas.width / canvas.clientWidth : 1;
    ctx.lineWidth = Math.max(1, LINE_PX * scale);
    ctx.font = `600 ${Math.round(FONT_PX * scale)}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    const textH = Math.round((FONT_PX + 4) * scale);
    const ids = [];
    for (const item of this.state.overlay()) {
      const [x1, y1, x2, y2] = item.box;
      const x = x1 * canvas.width;
      const y = y1 * canvas.height;
      ctx.strokeStyle = item.colour;
      ctx.strokeRect(x, y, (x2 - x1) * canvas.width, (y2 - y1) * canvas.height);
      const textW = ctx.measureText(item.text).width + 4 * scale;
      const ty = y >= textH ? y - textH : y; // above the box, or inside it at the top edge
      ctx.fillStyle = item.colour;
      ctx.fillRect(x, ty, textW, textH);
      ctx.fillStyle = "#000"; // label and track colours are bright: black text reads best
      ctx.fillText(item.text, x + 2 * scale, ty + 2 * scale);
      if (item.id !== null) ids.push(item.id);
    }
    // The track ids on the picture, for tooling and the browser tests (set only on change).
    const idsText = ids.join(" ");
    if (canvas.dataset.tracks !== idsText) canvas.dataset.tracks = idsText;
  }
}
