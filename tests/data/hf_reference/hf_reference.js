#!/usr/bin/env node
// Reference ids from Hugging Face's own tokenizer (the Rust `tokenizers` crate via its npm package,
// version 0.23.x): BertNormalizer + BertPreTokenizer + WordPiece, no added/special tokens, exactly the
// pipeline cram::data::wordpiece implements. Used to make the committed fixtures in tests/data/ and by
// benchmarks/tokenizer/ to compare ids and speed on the shared Wikipedia.
//
// Install once, outside the repository:  mkdir -p /work/hfref && cd /work/hfref && npm install tokenizers@0.23
// then point at it:                      export CRAM_HF_TOKENIZERS=/work/hfref/node_modules/tokenizers
//
// Modes (all read UTF-8):
//   encode  --vocab V [--input F] [--json]   one line of space-separated ids per input line; with --json
//                                            each input line is a JSON string or {"text": ...} (so
//                                            newlines and control characters survive)
//   normalize [--input F] [--json]           the normalised text, JSON-quoted, one per line
//   pretok    [--input F] [--json]           the pre-tokenised words, a JSON array per line
//   codepoints --out F                       for every scalar value: normalised + pre-tokenised form
//   train   --out vocab.txt FILE...          HF's WordPiece trainer (model default: 30000) on text files
//   time-encode --vocab V --input F [--json] [--batch N]   encodeBatch throughput, result on stderr
'use strict';
const fs = require('fs');
const readline = require('readline');
const hf = require(process.env.CRAM_HF_TOKENIZERS || 'tokenizers');

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
}
const flag = (name) => process.argv.includes(name);

function loadVocab(path) {
  // The same rule as WordPiece::from_file: one token per line, trailing whitespace trimmed, a
  // repeated token keeps its last line number.
  const vocab = {};
  const lines = fs.readFileSync(path, 'utf8').split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  lines.forEach((l, i) => { vocab[l.trimEnd()] = i; });
  return vocab;
}

function makeTokenizer(vocabPath) {
  const model = hf.WordPiece.init(loadVocab(vocabPath), { unkToken: '[UNK]', continuingSubwordPrefix: '##',
                                                        maxInputCharsPerWord: 100 });
  const tok = new hf.Tokenizer(model);
  tok.setNormalizer(hf.bertNormalizer({ cleanText: true, handleChineseChars: true, stripAccents: true,
                                        lowercase: true }));
  tok.setPreTokenizer(hf.bertPreTokenizer());
  return tok;
}

async function* inputLines() {
  const src = arg('--input') ? fs.createReadStream(arg('--input')) : process.stdin;
  const rl = readline.createInterface({ input: src, crlfDelay: Infinity });
  const json = flag('--json');
  for await (const line of rl) {
    if (!json) { yield line; continue; }
    const v = JSON.parse(line);
    yield typeof v === 'string' ? v : v.text;
  }
}

async function main() {
  const mode = process.argv[2];
  const out = [];
  const flush = () => { if (out.length) { process.stdout.write(out.join('')); out.length = 0; } };
  if (mode === 'encode') {
    const tok = makeTokenizer(arg('--vocab'));
    let batch = [];
    const run = async () => {
      const encs = await tok.encodeBatch(batch, { addSpecialTokens: false });
      for (const e of encs) out.push(e.getIds().join(' ') + '\n');
      batch = [];
      flush();
    };
    for await (const text of inputLines()) { batch.push(text); if (batch.length >= 256) await run(); }
    if (batch.length) await run();
  } else if (mode === 'normalize') {
    const n = hf.bertNormalizer({});
    for await (const text of inputLines()) out.push(JSON.stringify(n.normalizeString(text)) + '\n');
    flush();
  } else if (mode === 'pretok') {
    const n = hf.bertNormalizer({});
    const p = hf.bertPreTokenizer();
    for await (const text of inputLines())
      out.push(JSON.stringify(p.preTokenizeString(n.normalizeString(text)).map((w) => w[0])) + '\n');
    flush();
  } else if (mode === 'codepoints') {
    // "cp<TAB>normalised<TAB>words" for every scalar value, with the character between two letters so
    // that the pre-tokeniser's decision (space, punctuation, part of a word) is visible.
    const n = hf.bertNormalizer({});
    const p = hf.bertPreTokenizer();
    const fd = fs.openSync(arg('--out'), 'w');
    let buf = [];
    for (let cp = 0; cp <= 0x10ffff; ++cp) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const s = 'a' + String.fromCodePoint(cp) + 'b';
      const norm = n.normalizeString(s);
      const words = p.preTokenizeString(norm).map((w) => w[0]);
      buf.push(cp.toString(16) + '\t' + JSON.stringify(norm) + '\t' + JSON.stringify(words) + '\n');
      if (buf.length >= 65536) { fs.writeSync(fd, buf.join('')); buf = []; }
    }
    fs.writeSync(fd, buf.join(''));
    fs.closeSync(fd);
  } else if (mode === 'train') {
    const files = process.argv.slice(3).filter((a, i, all) => a !== '--out' && all[i - 1] !== '--out');
    const tok = new hf.Tokenizer(hf.WordPiece.empty());
    tok.setNormalizer(hf.bertNormalizer({}));
    tok.setPreTokenizer(hf.bertPreTokenizer());
    const t0 = process.hrtime.bigint();
    tok.train(files);
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const vocab = tok.getVocab(true);
    const tokens = Object.keys(vocab).sort((a, b) => vocab[a] - vocab[b]);
    fs.writeFileSync(arg('--out'), tokens.join('\n') + '\n');
    process.stderr.write(`hf train: ${files.length} files, vocab ${tokens.length}, ${secs.toFixed(2)} s\n`);
  } else if (mode === 'time-encode') {
    const tok = makeTokenizer(arg('--vocab'));
    const texts = [];
    let bytes = 0;
    for await (const text of inputLines()) { texts.push(text); bytes += Buffer.byteLength(text); }
    const bs = Number(arg('--batch', '1024'));
    let ntok = 0;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < texts.length; i += bs) {
      const encs = await tok.encodeBatch(texts.slice(i, i + bs), { addSpecialTokens: false });
      for (const e of encs) ntok += e.getLength();
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    process.stderr.write(`hf encode: ${texts.length} docs, ${bytes} bytes, ${ntok} tokens, ${secs.toFixed(3)} s, ` +
                         `${(bytes / secs / 1e6).toFixed(2)} MB/s\n`);
    console.log(JSON.stringify({ docs: texts.length, bytes, tokens: ntok, seconds: secs }));
  } else {
    process.stderr.write('usage: hf_reference.js encode|normalize|pretok|codepoints|train|time-encode ...\n');
    process.exit(2);
  }
}
main().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(1); });
