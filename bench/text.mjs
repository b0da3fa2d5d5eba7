// The benchmark text: 100,000 bytes of mixed-script prose, code and numbers, generated from a
// fixed seed (SplitMix64) so every run tokenizes the same bytes. Words are random, so a word
// cache cannot make it look faster than real text.

const SCRIPTS = [
  // [weight, alphabet (as an array of characters), min word length, max word length]
  [30, [...'abcdefghijklmnopqrstuvwxyz'], 2, 9],
  [6, [...'ABCDEFGHIJKLMNOPQRSTUVWXYZ'], 1, 6],
  [8, [...'абвгдежзийклмнопрстуфхцчшщыэюя'], 3, 9],
  [8, [...'的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生'], 1, 4],
  [4, [...'あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん'], 2, 6],
  [4, [...'ابتثجحخدذرزسشصضطظعغفقكلمنهوي'], 3, 7],
  [3, [...'αβγδεζηθικλμνξοπρστυφχψω'], 3, 8],
  [3, [...'가나다라마바사아자차카타파하'], 1, 4],
  [6, [...'0123456789'], 1, 7],
  [4, [...'(){}[];:,.!?+-*/=<>&|#%$@_"\''], 1, 3],
  [1, [...'😀🚀🌍🎉👍🔥✨💡'], 1, 2],
];
const SEPARATORS = [' ', ' ', ' ', ' ', ' ', ', ', '. ', '\n', '  ', '\t', '\n\n'];

function splitmix(seed) {
  let s = BigInt(seed);
  const MASK = (1n << 64n) - 1n;
  return () => {
    s = (s + 0x9e3779b97f4a7c15n) & MASK;
    let z = s;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
    return z ^ (z >> 31n);
  };
}

export function benchmarkText(bytes = 100_000, seed = 2026) {
  const next = splitmix(seed);
  const below = (n) => Number(next() % BigInt(n));
  const total = SCRIPTS.reduce((s, [w]) => s + w, 0);
  const encoder = new TextEncoder();
  let text = '';
  let size = 0;
  while (size < bytes) {
    let r = below(total);
    const [, alphabet, lo, hi] = SCRIPTS.find(([w]) => (r -= w) < 0);
    const len = lo + below(hi - lo + 1);
    let word = '';
    for (let i = 0; i < len; i++) word += alphabet[below(alphabet.length)];
    const piece = word + SEPARATORS[below(SEPARATORS.length)];
    const n = encoder.encode(piece).length;
    if (size + n > bytes) break;
    text += piece;
    size += n;
  }
  return text;
}
