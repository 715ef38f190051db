#!/usr/bin/env node
// Writes the inputs of the committed parity fixtures (tests/data/fixtures/):
//   hard_cases.jsonl  hand-picked hard Unicode cases, then seeded random strings drawn from every plane
//   wiki_sample.jsonl a modest sample of paragraphs of the shared Wikipedia's first file
// The expected ids come from hf_reference.js (see tests/data/hf_reference/README.md).
// Usage: node make_fixtures.js WIKI_00_JSONL OUT_DIR
'use strict';
const fs = require('fs');
const [wikiPath, outDir] = process.argv.slice(2);

const hand = [
  'Hello, World! This is BERT.', '', '   ', '\t\n\r', 'a\u0000b', 'a\uFFFDb', 'don\'t stop-believing...',
  '``quoted\'\' text', '[CLS] [MASK] [SEP] [UNK] ## ##ing', 'naïve café résumé Ångström Ørsted Łódź',
  'İstanbul ıi Straße ß ẞ ΣΊΣΥΦΟΣ ΌΣΟΣ ς', 'ﬁnance ﬂow Ǆemal ǅ ǆ Kelvin \u212A Ohm \u2126 \u212B',
  '日本語のテキスト、中文文本。한국어 텍스트 한글', '北京市朝阳区 𠀀𠀁 𪜀 𫝀 𫠠 𬺰 丽', '\u4E00\u9FFF\u3400\u4DBF\uF900\uFAFF',
  'Emoji: 😀👍🏽👨‍👩‍👧‍👦🏳️‍🌈🇩🇪 ❤️ ☕ 🥰 🫠', 'zero\u200Bwidth\u200Cnon\u200Djoiner\uFEFFbom\u2060wj',
  'soft\u00ADhyphen bidi\u202Eoverride\u202C \u2066iso\u2069', 'nbsp\u00A0here\u2028line\u2029para\u3000ideo\u2003em',
  'mongolian\u180Evowel', 'ctrl\u0001\u0002\u0007\u001B\u007F\u0085\u009Fchars\u000B\u000Cff',
  'combining e\u0301 a\u0300\u0316 o\u0308\u0304 Z\u0351\u0352\u0353\u0354 n\u0303', 'Vietnamese: Tiếng Việt có dấu ở đây ậ ữ',
  'Arabic: اَلْعَرَبِيَّةُ مرحبا بالعالم ، ؟ ؛', 'Hebrew: שָׁלוֹם עוֹלָם', 'Devanagari: हिन्दी नमस्ते क़ ज़',
  'Thai: ภาษาไทย สวัสดี', 'Greek: Ἀθῆναι ᾯ ΐ', 'Cyrillic: Привет, мир! Ёё Йй', 'Armenian: Բարեւ ﬓ',
  'Math: 𝐀𝐁𝐂 𝔸 ∑∫∂ x² ½ ⅓ Ⅻ ① ⑴', 'Fullwidth: ＡＢＣ １２３ ！？', 'Symbols: $100 + 5% = <x> ^ ` | ~ © ® ™ € £ ¥ § ¶ • † ‡',
  'Dashes — – ‐ ‒ ― and quotes “ ” ‘ ’ « » ‹ › „ ‚', 'URL https://en.wikipedia.org/wiki/Foo_(bar)?a=1&b=2#c',
  'email someone@example.com, 3.14159, 1,000,000, 10:30pm, 2015-01-02', 'Musical 𝅘𝅥𝅮 \u{1D165}\u{1D16D} \u{1D15E}',
  'a' + 'b'.repeat(98) + 'c', 'a' + 'b'.repeat(99) + 'c', 'x'.repeat(101), 'e\u0301'.repeat(100),
  'é'.repeat(101), '日'.repeat(150), 'supercalifragilisticexpialidocious antidisestablishmentarianism',
  'pneumonoultramicroscopicsilicovolcanoconiosis'.repeat(3), 'ab\u0130cd \u0130', 'tab\tsep\tvalues',
  'U+1734: \u1734 U+166D: \u166D U+111C9: \u{111C9} U+11938: \u{11938} U+2B820: \u{2B820}',
  'Hangul jamo: \u1100\u1161\u11A8 \u3131\u314F', 'Ogham\u1680space', 'Private use \uE000\u{F0000}',
  'Unassigned \u0378\u{E0080} tags \u{E0041}\u{E0042}', 'variation selectors ︎️ a\uFE0Fb \u{E0100}',
];

// Seeded xorshift so that the fixture is reproducible.
let s = 0x9E3779B9 >>> 0;
const rnd = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; };
const pools = [[0x20, 0x7E], [0xA0, 0x24F], [0x300, 0x36F], [0x370, 0x3FF], [0x400, 0x52F], [0x590, 0x6FF],
               [0x900, 0xDFF], [0xE00, 0xEFF], [0x1100, 0x11FF], [0x1E00, 0x1FFF], [0x2000, 0x206F],
               [0x2070, 0x2BFF], [0x3000, 0x30FF], [0x3400, 0x4DBF], [0x4E00, 0x9FFF], [0xAC00, 0xD7A3],
               [0xF900, 0xFFFD], [0x10000, 0x1FFFF], [0x1F300, 0x1FAFF], [0x20000, 0x2FA1F], [0x30000, 0x323AF],
               [0xE0000, 0xE01EF], [0xF0000, 0x10FFFD], [0x0, 0x1F]];
const random = [];
for (let k = 0; k < 400; ++k) {
  let str = '';
  const len = 1 + Math.floor(rnd() * 40);
  for (let i = 0; i < len; ++i) {
    const [lo, hi] = pools[Math.floor(rnd() * pools.length)];
    let cp = lo + Math.floor(rnd() * (hi - lo + 1));
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0x41;
    str += rnd() < 0.3 ? 'ab' : '';
    str += String.fromCodePoint(cp);
  }
  random.push(str);
}
fs.writeFileSync(`${outDir}/hard_cases.jsonl`, hand.concat(random).map((t) => JSON.stringify(t)).join('\n') + '\n');

// Wikipedia sample: every 40th paragraph of the first file, up to 150 KB, plus paragraphs with non-ASCII.
const paras = [];
let bytes = 0;
let n = 0;
for (const line of fs.readFileSync(wikiPath, 'utf8').split('\n')) {
  if (!line) continue;
  for (const p of JSON.parse(line).text.split('\n')) {
    if (!p.trim()) continue;
    ++n;
    const nonAscii = /[^\x00-\x7F]/.test(p);
    if ((n % 40 === 0 || (nonAscii && n % 7 === 0)) && p.length < 3000 && bytes < 150000) {
      paras.push(JSON.stringify({ text: p }));
      bytes += Buffer.byteLength(p);
    }
  }
}
fs.writeFileSync(`${outDir}/wiki_sample.jsonl`, paras.join('\n') + '\n');
process.stderr.write(`hard cases: ${hand.length} + ${random.length} random; wiki sample: ${paras.length} paragraphs, ${bytes} bytes\n`);
