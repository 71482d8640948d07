// A label's colour: the same hue the gateway's snapshots and MJPEG use
// (engine/annotate.py: OpenCV HSV with hue = crc32(label) % 180, S = 220, V = 255), so a
// "Person" box looks the same in every view.

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(text) {
  let crc = 0xffffffff;
  for (const byte of new TextEncoder().encode(text)) {
    crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

// OpenCV's 8-bit HSV -> RGB (hue in 0..179 = degrees / 2).
function hsvToRgb(hue, sat, val) {
  const h = (hue * 2) / 60;
  const s = sat / 255;
  const v = val / 255;
  const c = v * s;
  const x = c * (1 - Math.abs((h % 2) - 1));
  const [r, g, b] =
    h < 1 ? [c, x, 0] : h < 2 ? [x, c, 0] : h < 3 ? [0, c, x] :
    h < 4 ? [0, x, c] : h < 5 ? [x, 0, c] : [c, 0, x];
  const m = v - c;
  return [r, g, b].map((channel) => Math.round((channel + m) * 255));
}

const cache = new Map();

/** CSS colour of a label, e.g. "rgb(255, 35, 120)". */
export function labelColour(label) {
  let colour = cache.get(label);
  if (!colour) {
    const [r, g, b] = hsvToRgb(crc32(label) % 180, 220, 255);
    colour = `rgb(${r}, ${g}, ${b})`;
    cache.set(label, colour);
  }
  return colour;
}
