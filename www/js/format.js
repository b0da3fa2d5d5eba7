// Number and size formatting for display.

const int = new Intl.NumberFormat('en-US');

/** 1234567 -> "1,234,567" (strings pass through: 64-bit values beyond 2^53 arrive as strings). */
export function thousands(n) {
  return typeof n === 'number' ? int.format(n) : String(n);
}

/** Bytes as "12.3 MiB". */
export function bytes(n) {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${thousands(n)} bytes` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** A float for tables: 6 significant digits, exponent when large or small. */
export function num(x) {
  if (typeof x !== 'number') return String(x);
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e5 || a < 1e-3 ? x.toExponential(4) : Number(x.toPrecision(6)).toString();
}

/** Show invisible characters in a token or string value so it can be read in one line. */
export function visible(s) {
  return s.replace(/[\u0000-\u001f\u007f]/g, (c) => {
    const named = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }[c];
    return named || `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}
