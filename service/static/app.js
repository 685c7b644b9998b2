// The explorer's panels: each runs its own API call, shows its own latency and its own error, and renders its answer.

import {call, indexPath, setApiKey} from "./api.js";
import {el, formatMs, tokensText} from "./text.js";

const $ = (selector) => document.querySelector(selector);
const TOP_TOKENS = 15;
const KEY_STORAGE = "gramdex-api-key";

class Panel {
  constructor(selector) {
    this.root = $(selector);
    this.out = this.root.querySelector(".out");
    this.error = this.root.querySelector(".error");
    this.latency = this.root.querySelector(".latency");
  }

  // `work` resolves to {nodes, ms}: what to show and how long the calls took in the browser
  async run(work) {
    this.root.dataset.state = "busy";
    this.latency.textContent = "…";
    try {
      const {nodes, ms} = await work();
      this.error.hidden = true;
      this.out.replaceChildren(...nodes);
      this.latency.textContent = formatMs(ms);
      this.root.dataset.state = "done";
    } catch (err) {
      this.out.replaceChildren();
      this.error.textContent = err instanceof TypeError ? `The server could not be reached: ${err.message}` : err.message;
      this.error.hidden = false;
      this.latency.textContent = "";
      this.root.dataset.state = "error";
    }
  }
}

const panels = {
  count: new Panel("#count-panel"),
  ntd: new Panel("#ntd-panel"),
  infgram: new Panel("#infgram-panel"),
  docs: new Panel("#docs-panel"),
  attribute: new Panel("#attribute-panel"),
  summarize: new Panel("#summarize-panel"),
};

const index = () => $("#index").value;
const isCnf = (text) => text.includes(" AND ") || text.includes(" OR ");

function chips(tokens, markFrom = tokens.length) {
  return el("div", {class: "tokens"}, tokens.map((t, i) =>
    el(i >= markFrom ? "mark" : "span", {class: "token"}, JSON.stringify(tokensText([t])))));
}

function shownQuery(body) {
  if (!body.tokens) return el("code", {}, JSON.stringify(body.token_ids));
  if (!Array.isArray(body.tokens[0])) return chips(body.tokens);
  return el("code", {}, body.tokens.map((clause) => clause.map((t) => JSON.stringify(tokensText(t))).join(" OR "))
    .join(" AND "));
}

async function showCount(query) {
  const {body, ms} = await call("POST", indexPath(index(), "count"), {query});
  return {ms, nodes: [el("p", {class: "big", "data-count": body.count}, body.count.toLocaleString("en"),
    body.approx ? el("span", {class: "muted"}, " (approximate)") : null), shownQuery(body)]};
}

function barChart(nextTokens) {
  return el("div", {class: "bars"}, nextTokens.slice(0, TOP_TOKENS).map((t) =>
    el("div", {class: "bar-row", "data-token-id": t.token_id},
      el("span", {class: "bar-label"}, JSON.stringify(t.token === null ? `#${t.token_id}` : tokensText([t.token]))),
      el("span", {class: "bar-track"}, el("span", {class: "bar", style: `width: ${(t.prob * 100).toFixed(2)}%`})),
      el("span", {class: "bar-value"}, `${(t.prob * 100).toFixed(1)}% (${t.cont_cnt.toLocaleString("en")})`))));
}

async function showNtd(prompt) {
  if (isCnf(prompt)) return {ms: 0, nodes: [el("p", {class: "muted"}, "A CNF has no next tokens.")]};
  const {body, ms} = await call("POST", indexPath(index(), "ntd"), {prompt});
  if (!body.next_tokens.length) return {ms, nodes: [el("p", {class: "muted"}, "The prompt does not occur.")]};
  const note = `after ${body.prompt_cnt.toLocaleString("en")} occurrences${body.approx ? " (sampled)" : ""}`;
  return {ms, nodes: [el("p", {class: "muted"}, note), barChart(body.next_tokens)]};
}

async function showInfgram(prompt) {
  if (isCnf(prompt)) return {ms: 0, nodes: [el("p", {class: "muted"}, "A CNF has no ∞-gram probability.")]};
  const cont = $("#cont").value;
  const {body, ms} = await call("POST", indexPath(index(), "infgram/ntd"), {prompt});
  const tokens = body.prompt_tokens || body.prompt_ids.map(String);
  const nodes = [chips(tokens, tokens.length - body.suffix_len),
    el("p", {class: "suffix-note"}, `The last ${body.suffix_len} of ${tokens.length} tokens occur `
      + `${body.prompt_cnt.toLocaleString("en")} times.`)];
  let total = ms;
  if (cont) {
    const p = await call("POST", indexPath(index(), "infgram/prob"), {prompt, cont});
    total += p.ms;
    nodes.push(el("p", {class: "big", "data-prob": p.body.prob},
      `P(${JSON.stringify(cont)} | …) = ${p.body.prob === null ? "undefined" : p.body.prob.toPrecision(4)}`));
  } else if (body.next_tokens.length) {
    nodes.push(barChart(body.next_tokens.slice(0, 5)));
  }
  return {ms: total, nodes};
}

function metadataList(metadata) {
  if (metadata === null || typeof metadata !== "object") return el("pre", {class: "meta"}, JSON.stringify(metadata));
  return el("dl", {class: "meta"}, Object.entries(metadata).flatMap(([k, v]) =>
    [el("dt", {}, k), el("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))]));
}

function documentCard(doc, marked) {
  return el("article", {class: "doc", "data-doc-ix": doc.doc_ix},
    el("h3", {}, `Document ${doc.doc_ix}`, el("span", {class: "muted"},
      ` · ${doc.doc_len.toLocaleString("en")} tokens, shown from token ${doc.disp_start}`)),
    metadataList(doc.metadata),
    el("p", {class: "doc-text"}, marked));
}

async function showDocs(query) {
  const maxnum = Math.max(1, Number($("#maxnum").value) || 1);
  const {body, ms} = await call("POST", indexPath(index(), "documents/search"), {query, maxnum, max_disp_len: 80});
  const head = el("p", {class: "muted"}, `${body.count.toLocaleString("en")} occurrences; `
    + `${body.documents.length} documents drawn at random`);
  return {ms, nodes: [head, ...body.documents.map((d) => documentCard(d, d.spans.map((s) =>
    s.match === null ? s.text : el("mark", {"data-clause": s.match}, s.text))))]};
}

// every occurrence of `needle` in `text` marked
function markAll(text, needle) {
  const parts = needle ? text.split(needle) : [text];
  return parts.flatMap((part, i) => (i === 0 ? [part] : [el("mark", {}, needle), part]));
}

async function showLocations(span, where) {
  const ixs = [...new Set(span.locations.map((l) => l.doc_ix))];
  const open = async (docIx) => {
    const {body} = await call("GET", `${indexPath(index(), `documents/${docIx}`)}?max_disp_len=2000`);
    where.querySelector(".where-doc").replaceChildren(documentCard(body, markAll(body.text, span.text.trim())));
  };
  where.replaceChildren(
    el("p", {}, `${JSON.stringify(span.text)}: ${span.count.toLocaleString("en")} occurrences; in documents `,
      ixs.map((ix) => el("button", {type: "button", class: "link", onclick: () => open(ix)}, `#${ix}`))),
    el("div", {class: "where-doc"}));
  if (ixs.length) await open(ixs[0]);
}

async function showAttribution(text, minLen) {
  const {body, ms} = await call("POST", indexPath(index(), "attribute"), {query: text, min_len: minLen});
  const tokens = body.tokens || body.token_ids.map(String);
  const longest = Math.max(1, ...body.spans.map((s) => s.end - s.start));
  // each token belongs to the longest span covering it; runs of tokens with the same span become one element
  const owner = tokens.map(() => -1);
  body.spans.forEach((s, k) => {
    for (let i = s.start; i < s.end; i++) {
      const cur = body.spans[owner[i]];
      if (!cur || cur.end - cur.start < s.end - s.start) owner[i] = k;
    }
  });
  const where = panels.attribute.root.querySelector(".where");
  where.replaceChildren();
  const nodes = [];
  // the server gives a byte-level BPE text the leading space a word has inside running text: not the user's
  const addedSpace = !/^\s/.test(text);
  for (let i = 0; i < tokens.length;) {
    let j = i;
    while (j < tokens.length && owner[j] === owner[i]) j++;
    let piece = tokensText(tokens.slice(i, j));
    if (i === 0 && addedSpace && piece.startsWith(" ")) piece = piece.slice(1);
    const span = body.spans[owner[i]];
    if (!span) nodes.push(piece);
    else {
      const len = span.end - span.start;
      const strength = 0.15 + 0.65 * (len / longest);
      nodes.push(el("span", {class: "attr", "data-len": len, title: `${len} tokens, ${span.count} occurrences`,
        style: `background: rgba(230, 120, 20, ${strength.toFixed(2)})`,
        onclick: () => showLocations(span, where).catch((err) => { where.textContent = err.message; })}, piece));
    }
    i = j;
  }
  const summary = el("p", {class: "muted"}, `${body.spans.length} spans of at least ${minLen} tokens; `
    + `the longest has ${body.spans.length ? longest : 0} tokens`);
  return {ms, nodes: [summary, el("p", {class: "attributed"}, nodes)]};
}

function highlightPieces(source, sentences) {
  const pieces = sentences.flatMap((s) => s.pieces.map(([a, b]) => [a, b, s.index])).sort((x, y) => x[0] - y[0]);
  const nodes = [];
  let at = 0;
  for (const [a, b, sentence] of pieces) {
    if (a < at) continue;
    nodes.push(source.slice(at, a), el("mark", {class: "kept", "data-sentence": sentence}, source.slice(a, b)));
    at = b;
  }
  nodes.push(source.slice(at));
  return nodes;
}

async function showSummary(text) {
  const max_tokens = Math.max(1, Number($("#max-tokens").value) || 1);
  const {body, ms} = await call("POST", "/v1/summarize", {text, max_tokens, mode: $("#mode").value});
  const s = body.scores;
  return {ms, nodes: [
    el("p", {class: "summary"}, body.summary),
    el("p", {class: "muted"}, `${s.tokens} of ${body.budget} tokens · saliency ${s.saliency.toFixed(3)} · `
      + `faithfulness ${s.faithfulness.toFixed(3)} · support ${s.support.toFixed(3)} · ${body.model}`),
    el("p", {class: "source"}, highlightPieces(text, body.sentences))]};
}

async function loadIndexes() {
  const pageError = $("#page-error");
  try {
    const {body} = await call("GET", "/v1/indexes");
    const select = $("#index");
    const previous = select.value;
    select.replaceChildren(...body.indexes.map((ix) => el("option", {value: ix.name}, ix.name)));
    if (body.indexes.some((ix) => ix.name === previous)) select.value = previous;
    const describe = () => {
      const ix = body.indexes.find((i) => i.name === select.value);
      $("#index-info").textContent = ix ? `${ix.documents.toLocaleString("en")} documents · `
        + `${ix.tokens.toLocaleString("en")} tokens · ${ix.tokenizer || "token ids only"}` : "";
    };
    select.onchange = describe;
    describe();
    pageError.hidden = true;
  } catch (err) {
    pageError.textContent = err.status === 401 ? "This server needs an API key: type it above." : err.message;
    pageError.hidden = false;
  }
}

function init() {
  const keyInput = $("#api-key");
  keyInput.value = sessionStorage.getItem(KEY_STORAGE) || "";
  setApiKey(keyInput.value);
  keyInput.addEventListener("change", () => {
    sessionStorage.setItem(KEY_STORAGE, keyInput.value);
    setApiKey(keyInput.value);
    loadIndexes();
  });
  $("#query-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const q = $("#query").value;
    panels.count.run(() => showCount(q));
    panels.ntd.run(() => showNtd(q));
    panels.infgram.run(() => showInfgram(q));
    panels.docs.run(() => showDocs(q));
  });
  $("#attribute-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const minLen = Math.max(1, Number($("#min-len").value) || 1);
    panels.attribute.run(() => showAttribution($("#attribute-text").value, minLen));
  });
  $("#summarize-form").addEventListener("submit", (event) => {
    event.preventDefault();
    panels.summarize.run(() => showSummary($("#summarize-text").value));
  });
  loadIndexes().then(() => { document.body.dataset.ready = "true"; });
}

init();
