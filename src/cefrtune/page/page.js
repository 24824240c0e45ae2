// The teacher page of `cefrtune serve`: plain JavaScript, no build step. Every user or model text is
// put on the page with textContent (never as HTML), so a sentence or word cannot inject markup.
"use strict";

const MAX_WORDS = 10;
const WORD_RE = /^[A-Za-zÇĞİÖŞÜÂÎÛçğıöşüâîûqwxQWX]+(?:[ '’-][A-Za-zÇĞİÖŞÜÂÎÛçğıöşüâîûqwxQWX]+)*$/;
const state = { level: "A1", words: [], items: [] };

const $ = (selector, root = document) => root.querySelector(selector);

function reasonInTurkish(reason, word) {
  if (reason === "missing") return "Model bu cümleyi yazamadı.";
  const rules = [
    [/^does not use '(.*)'$/, (m) => `“${m[1]}” kelimesi cümlede geçmiyor.`],
    [/^unknown word\(s\): (.*)$/, (m) => `Tanınmayan kelime: ${m[1]}.`],
    [/^grammar above level: (.*)$/, (m) => `Seviyenin üstünde dil bilgisi: ${m[1]}.`],
    [/^vocabulary above level: (.*)$/, (m) => `Seviyenin üstünde kelime: ${m[1]}.`],
    [/^repeats another sentence$/, () => "Listedeki başka bir cümleyle aynı."],
    [/^copied verbatim from the training data$/, () => "Eğitim verisindeki bir cümlenin aynısı."],
  ];
  for (const [re, say] of rules) {
    const m = reason.match(re);
    if (m) return say(m);
  }
  return reason;
}

async function api(path, body) {
  const headers = { "Content-Type": "application/json" };
  const key = sessionStorage.getItem("cefrtune-key");
  if (key) headers.Authorization = `Bearer ${key}`;
  const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
  if (response.status === 401) {
    const entered = window.prompt("Bu sunucu bir API anahtarı istiyor. Anahtarı girin:");
    if (entered) {
      sessionStorage.setItem("cefrtune-key", entered.trim());
      return api(path, body);
    }
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (data.error && data.error.message) || `Sunucu hatası (${response.status})`;
    throw new Error(message);
  }
  return data;
}

function setStatus(text, isError = false) {
  const status = $("#status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function buildWordFields() {
  const list = $("#word-fields");
  for (let i = 1; i <= MAX_WORDS; i++) {
    const li = document.createElement("li");
    const input = document.createElement("input");
    Object.assign(input, { type: "text", id: `word-${i}`, name: `word-${i}`, maxLength: 40, autocomplete: "off",
                           spellcheck: false });
    input.setAttribute("aria-label", `Kelime ${i}`);
    li.append(input);
    list.append(li);
  }
}

function fillFromPaste() {
  const words = $("#paste").value.split(/[,;\n\t]+/).map((w) => w.trim()).filter(Boolean).slice(0, MAX_WORDS);
  for (let i = 1; i <= MAX_WORDS; i++) $(`#word-${i}`).value = words[i - 1] || "";
  $("#word-1").focus();
}

function readWords() {
  const words = [];
  let problem = null;
  for (let i = 1; i <= MAX_WORDS; i++) {
    const input = $(`#word-${i}`);
    const word = input.value.trim();
    const bad = word && !WORD_RE.test(word);
    input.setAttribute("aria-invalid", bad ? "true" : "false");
    if (bad && !problem) problem = `${i}. kelime yalnızca Türkçe harf, boşluk, kesme işareti ve tire içerebilir.`;
    if (word) words.push(word);
  }
  if (!problem && words.length === 0) problem = "En az bir kelime yazın.";
  return { words, problem };
}

async function generate(event) {
  event.preventDefault();
  const { words, problem } = readWords();
  if (problem) return setStatus(problem, true);
  state.level = new FormData($("#request")).get("level");
  state.words = words;
  const button = $("#generate");
  button.disabled = true;
  setStatus("Cümleler yazılıyor ve kontrol ediliyor…");
  try {
    const data = await api("/v1/sentences", { level: state.level, words, checked: true });
    state.items = data.sentences.map((s) => ({ ...s, original: s.sentence, edited: false, rating: null }));
    render();
    const flagged = state.items.filter((s) => !s.passed).length;
    setStatus(`${state.items.length} cümle hazır (${data.seconds.toFixed(1)} sn)` +
              (flagged ? `; ${flagged} cümlede uyarı var.` : "; hepsi kontrolden geçti."));
    $("#result-title").focus();
  } catch (err) {
    setStatus(err.message, true);
  } finally {
    button.disabled = false;
  }
}

// The sentence as text nodes with the target word's span in <mark> (never via innerHTML).
function sentenceNodes(item, blank = false) {
  const text = item.sentence || "";
  const span = findSpan(item);
  if (!span) return [document.createTextNode(text || "(cümle yok)")];
  const middle = blank ? document.createTextNode("________") : document.createElement("mark");
  if (!blank) middle.textContent = text.slice(span[0], span[1]);
  return [document.createTextNode(text.slice(0, span[0])), middle, document.createTextNode(text.slice(span[1]))];
}

function findSpan(item) {
  if (!item.sentence) return null;
  if (!item.edited) return item.highlight;
  // An edited sentence is not checked again: mark the first word that starts like the target word.
  const stem = item.word.toLocaleLowerCase("tr").slice(0, Math.max(2, item.word.length - 1));
  const re = /[A-Za-zÇĞİÖŞÜÂÎÛçğıöşüâîû’']+/g;
  let m;
  while ((m = re.exec(item.sentence))) {
    if (m[0].toLocaleLowerCase("tr").startsWith(stem)) return [m.index, m.index + m[0].length];
  }
  return null;
}

function render() {
  const list = $("#sentences");
  list.replaceChildren();
  state.items.forEach((item, j) => list.append(renderItem(item, j)));
  $("#result").hidden = state.items.length === 0;
}

function renderItem(item, j) {
  const li = $("#sentence-template").content.firstElementChild.cloneNode(true);
  li.dataset.index = String(j + 1);
  li.classList.toggle("flagged", !item.passed);
  $(".text", li).replaceChildren(...sentenceNodes(item));
  const warning = $(".warning", li);
  const notes = item.edited ? ["Düzenlendi; bu hâli kontrol edilmedi."] : item.reasons.map((r) => reasonInTurkish(r, item.word));
  warning.hidden = notes.length === 0;
  warning.textContent = notes.length ? "Uyarı: " + notes.join(" ") : "";
  $(".edit-input", li).value = item.sentence || "";
  $(".edit-button", li).addEventListener("click", () => { $(".edit", li).hidden = false; $(".edit-input", li).focus(); });
  $(".cancel", li).addEventListener("click", () => { $(".edit", li).hidden = true; $(".edit-button", li).focus(); });
  $(".save", li).addEventListener("click", () => saveEdit(j, $(".edit-input", li).value));
  $(".edit-input", li).addEventListener("keydown", (e) => { if (e.key === "Enter") saveEdit(j, e.target.value); });
  $(".regenerate", li).addEventListener("click", (e) => regenerate(j, e.target));
  $(".copy", li).addEventListener("click", () => copyText(item.sentence || ""));
  for (const rating of ["up", "down"]) {
    const button = $(`.${rating}`, li);
    button.setAttribute("aria-pressed", String(item.rating === rating));
    button.addEventListener("click", () => sendFeedback(j, rating));
  }
  return li;
}

function saveEdit(j, value) {
  const text = value.trim();
  if (!text) return setStatus("Boş cümle kaydedilemez.", true);
  if (/[<>]/.test(text)) return setStatus("Cümlede < ya da > işareti olamaz.", true);
  Object.assign(state.items[j], { sentence: text, edited: text !== state.items[j].original });
  render();
  setStatus(`${j + 1}. cümle kaydedildi.`);
  $(`#sentences li[data-index="${j + 1}"] .edit-button`).focus();
}

async function regenerate(j, button) {
  button.disabled = true;
  setStatus(`${j + 1}. cümle yeniden yazılıyor…`);
  try {
    const sentences = state.items.map((s) => s.sentence);
    const data = await api("/v1/sentences/regenerate", { level: state.level, words: state.words, sentences, index: j + 1 });
    state.items[j] = { ...data, original: data.sentence, edited: false, rating: null };
    render();
    setStatus(`${j + 1}. cümle yeniden yazıldı.`);
    $(`#sentences li[data-index="${j + 1}"] .regenerate`).focus();
  } catch (err) {
    setStatus(err.message, true);
    button.disabled = false;
  }
}

async function sendFeedback(j, rating) {
  const item = state.items[j];
  if (!item.original) return setStatus("Yazılmamış bir cümle için görüş gönderilemez.", true);
  try {
    await api("/v1/feedback", { level: state.level, word: item.word, index: j + 1, sentence: item.original, rating,
                                correction: item.edited ? item.sentence : null, words: state.words });
    item.rating = rating;
    render();
    setStatus("Teşekkürler, görüşünüz kaydedildi.");
  } catch (err) {
    setStatus(err.message, true);
  }
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    setStatus("Cümle panoya kopyalandı.");
  } catch {
    setStatus("Kopyalanamadı; cümleyi seçip kendiniz kopyalayın.", true);
  }
}

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

const csvCell = (value) => `"${String(value ?? "").replace(/"/g, '""')}"`;

function exportCsv() {
  const rows = [["no", "kelime", "cümle", "uyarı"]];
  state.items.forEach((s, j) => rows.push([j + 1, s.word, s.sentence || "",
    s.edited ? "düzenlendi" : s.reasons.map((r) => reasonInTurkish(r, s.word)).join(" ")]));
  download(`cumleler-${state.level}.csv`, "\ufeff" + rows.map((r) => r.map(csvCell).join(",")).join("\r\n") + "\r\n",
           "text/csv;charset=utf-8");
}

function blanked(item) {
  return sentenceNodes(item, true).map((n) => n.textContent).join("");
}

function exportAnki() {
  const clean = (t) => String(t || "").replace(/[\t\r\n]+/g, " ");
  const lines = ["#separator:tab", "#html:false", "#columns:Ön\tArka"];
  for (const s of state.items) if (s.sentence) lines.push(`${clean(blanked(s))}\t${clean(s.word)} — ${clean(s.sentence)}`);
  download(`anki-${state.level}.tsv`, lines.join("\n") + "\n", "text/tab-separated-values;charset=utf-8");
}

function printSheet(withAnswers) {
  $("#sheet-level").textContent = `${state.level} seviyesi` + (withAnswers ? " (cevaplı)" : "");
  const bank = $("#sheet-bank");
  bank.textContent = withAnswers ? "" : "Kelimeler: " + [...state.words].sort((a, b) => a.localeCompare(b, "tr")).join(", ");
  const lines = $("#sheet-lines");
  lines.replaceChildren();
  for (const s of state.items) {
    const li = document.createElement("li");
    li.append(...sentenceNodes(s, !withAnswers));
    lines.append(li);
  }
  window.print();
}

document.addEventListener("DOMContentLoaded", () => {
  buildWordFields();
  $("#request").addEventListener("submit", generate);
  $("#fill").addEventListener("click", fillFromPaste);
  $("#export-csv").addEventListener("click", exportCsv);
  $("#export-anki").addEventListener("click", exportAnki);
  $("#print-answers").addEventListener("click", () => printSheet(true));
  $("#print-blank").addEventListener("click", () => printSheet(false));
  $("#result-title").tabIndex = -1;
});
