// Parse Mermaid text from stdin with Mermaid's own parser; DOMPurify needs a window.
import { JSDOM } from 'jsdom';
import fs from 'fs';
const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');
const text = fs.readFileSync(0, 'utf8');
try {
  const r = await mermaid.parse(text);
  console.log(JSON.stringify({ok: true, type: r.diagramType}));
} catch (e) {
  console.log(JSON.stringify({ok: false, error: String(e.message || e).slice(0, 500)}));
  process.exit(1);
}
