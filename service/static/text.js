// Building DOM safely (text is always set as text, never parsed as HTML) and turning token strings back into text.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "style") node.style.cssText = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// GPT-2's byte-level BPE writes each byte as a printable character; this is its table, reversed
const BYTE_OF = (() => {
  const printable = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const map = new Map(printable.map((b) => [String.fromCodePoint(b), b]));
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (!printable.includes(b)) map.set(String.fromCodePoint(256 + extra++), b);
  }
  return map;
})();
const HEX_BYTE = /^<0x([0-9A-Fa-f]{2})>$/;  // how a bytes index names a byte that is not ASCII
const encoder = new TextEncoder();

// the bytes a token stands for: byte-level BPE characters, <0xNN>, SentencePiece's ▁ for a space, or plain text
export function tokenBytes(token) {
  const hex = HEX_BYTE.exec(token);
  if (hex) return [parseInt(hex[1], 16)];
  const chars = [...token];
  if (chars.every((c) => BYTE_OF.has(c))) return chars.map((c) => BYTE_OF.get(c));
  return [...encoder.encode(token.replaceAll("▁", " "))];
}

export function tokensText(tokens) {
  return new TextDecoder().decode(new Uint8Array(tokens.flatMap(tokenBytes)));
}

export function formatMs(ms) {
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}
