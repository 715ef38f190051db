// Helper of tokenizer_check.sh (node):
//   lines FILE.jsonl      -> the "text" of each JSON line, split into its non-empty lines, one per output line
//   encode TOKENIZER LINES -> space-separated ids per line (no special tokens), like `cram_bert_24h tokenize`
//   template TOKENIZER    -> checks [CLS] A [SEP] and [CLS] A [SEP] B [SEP] with type ids 0..0 1..1
'use strict';
const fs = require('fs');
const [mode, a, b] = process.argv.slice(2);
if (mode === 'lines') {
  const out = [];
  for (const line of fs.readFileSync(a, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const text = JSON.parse(line).text || '';
    for (const l of text.split('\n')) if (l.trim()) out.push(l.replace(/\r$/, ''));
  }
  process.stdout.write(out.join('\n') + '\n');
} else if (mode === 'encode') {
  const { Tokenizer } = require('tokenizers');
  const tok = Tokenizer.fromFile(a);
  const lines = fs.readFileSync(b, 'utf8').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  (async () => {
    const out = [];
    for (let i = 0; i < lines.length; i += 256) {
      const enc = await tok.encodeBatch(lines.slice(i, i + 256), { addSpecialTokens: false });
      for (const e of enc) out.push(e.getIds().join(' '));
    }
    process.stdout.write(out.join('\n') + '\n');
  })().catch((e) => { console.error(e); process.exit(1); });
} else if (mode === 'template') {
  const { Tokenizer } = require('tokenizers');
  const tok = Tokenizer.fromFile(a);
  const vocab = JSON.parse(fs.readFileSync(a, 'utf8')).model.vocab;
  (async () => {
    const one = await tok.encode('The cat sat.');
    const two = await tok.encode('The cat sat.', 'A dog ran.');
    const ids = one.getIds(), pids = two.getIds(), types = two.getTypeIds();
    const fail = (m) => { console.error('FAIL: ' + m); process.exit(1); };
    if (ids[0] !== vocab['[CLS]'] || ids[ids.length - 1] !== vocab['[SEP]']) fail('single: not [CLS] ... [SEP]: ' + ids);
    if (pids[0] !== vocab['[CLS]'] || pids[pids.length - 1] !== vocab['[SEP]']) fail('pair: not [CLS] ... [SEP]: ' + pids);
    const firstSep = pids.indexOf(vocab['[SEP]']);
    for (let i = 0; i < types.length; ++i)
      if (types[i] !== (i <= firstSep ? 0 : 1)) fail('pair type ids ' + types + ' (first [SEP] at ' + firstSep + ')');
    if (JSON.stringify(ids.slice(1, -1)) !== JSON.stringify(pids.slice(1, firstSep))) fail('pair: segment A differs from single');
    console.log('ok: template [CLS] A [SEP] / [CLS] A [SEP] B [SEP], type ids ' + types.join(''));
  })().catch((e) => { console.error(e); process.exit(1); });
} else {
  console.error('usage: tokenizer_check.js lines|encode|template ...');
  process.exit(2);
}
