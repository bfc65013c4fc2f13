// The reviewer page: sign in with a token, then judge one item after another through the JSON API.
// Every text from the server or the reviewer is set with textContent, never parsed as HTML, so markup in
// a source, translation or post-edit is shown as text and never runs.
"use strict";

const TOKEN_KEY = "medtune-reviewer-token";
const MAX_DIFF_CELLS = 250000; // LCS table size above which the diff shows the whole text as changed

const state = { token: sessionStorage.getItem(TOKEN_KEY), item: null, shownAt: 0, flags: [], busy: false };
const $ = (id) => document.getElementById(id);

function show(message, isError = false) {
  $("status").textContent = message;
  $("status").classList.toggle("error", isError);
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + state.token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit", cache: "no-store",
  });
  if (response.status === 401) {
    signOut();
    throw new Error("Your token was not accepted; sign in again.");
  }
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(data && data.error ? data.error : "HTTP " + response.status);
  return { status: response.status, data };
}

function setProgress(progress) {
  $("progress").textContent = progress ? `${progress.done} / ${progress.total} judged` : "";
}

// ---- sign in -------------------------------------------------------------------------------------

async function signIn(token) {
  state.token = token;
  const { data } = await api("GET", "/api/me");
  sessionStorage.setItem(TOKEN_KEY, token);
  $("who").textContent = data.project ? `${data.reviewer} · ${data.project}` : data.reviewer;
  setProgress(data.progress);
  buildFlags(data.flags);
  $("sign-in").hidden = true;
  $("review").hidden = false;
  $("sign-out").hidden = false;
  await loadNext();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.item = null;
  $("review").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("who").textContent = "";
  setProgress(null);
}

function buildFlags(flags) {
  state.flags = flags;
  const box = $("flags");
  box.querySelectorAll("label").forEach((label) => label.remove());
  flags.forEach((flag, index) => {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox";
    input.value = flag;
    input.id = "flag-" + flag;
    label.append(input, " " + flag + " ");
    const key = document.createElement("kbd");
    key.textContent = "Alt+" + (index + 1);
    label.append(key);
    box.append(label);
  });
}

// ---- one item ------------------------------------------------------------------------------------

// The source as text nodes and <mark>s around glossary terms; term offsets count code points.
function renderSource(source, terms) {
  const target = $("source");
  target.replaceChildren();
  const chars = Array.from(source);
  let at = 0;
  for (const term of terms) {
    if (term.start < at) continue;
    target.append(chars.slice(at, term.start).join(""));
    const mark = document.createElement("mark");
    mark.textContent = chars.slice(term.start, term.end).join("");
    mark.title = `${term.en} → ${term.es}`;
    target.append(mark);
    at = term.end;
  }
  target.append(chars.slice(at).join(""));
  const list = $("terms");
  list.replaceChildren();
  for (const term of terms) {
    const entry = document.createElement("li");
    entry.textContent = `${term.en} → ${term.es}`;
    list.append(entry);
  }
}

function showItem(item) {
  state.item = item;
  $("done").hidden = item !== null;
  $("item").hidden = item === null;
  $("item").dataset.itemId = item ? item.item_id : "";
  if (item === null) return;
  renderSource(item.source, item.terms);
  $("translation").textContent = item.translation;
  $("post-edit").value = item.translation;
  $("comment").value = "";
  setScore(0.5);
  $("flags").querySelectorAll("input").forEach((box) => { box.checked = false; });
  renderDiff();
  setProgress(item.progress);
  state.shownAt = performance.now();
}

async function loadNext() {
  const { status, data } = await api("GET", "/api/next");
  if (status === 204) {
    const me = await api("GET", "/api/me"); // the final count, shown together with the "nothing left" note
    showItem(null);
    setProgress(me.data.progress);
  } else {
    showItem(data);
  }
}

function setScore(value) {
  $("score").value = String(value);
  $("score-value").textContent = Number($("score").value).toFixed(2);
}

// ---- the post-edit diff ----------------------------------------------------------------------------

// Words and the whitespace between them, so the diff keeps the text's spacing.
const tokens = (text) => text.match(/\s+|[^\s]+/g) || [];

// Longest common subsequence over tokens: a few dozen words per sentence, so the O(n·m) table is tiny.
function wordDiff(before, after) {
  const a = tokens(before), b = tokens(after);
  if ((a.length + 1) * (b.length + 1) > MAX_DIFF_CELLS) {
    return [["del", before], ["ins", after]];
  }
  const table = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      table[i][j] = a[i] === b[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
    }
  }
  const parts = [];
  const push = (kind, text) => {
    const last = parts[parts.length - 1];
    if (last && last[0] === kind) last[1] += text; else parts.push([kind, text]);
  };
  let i = 0, j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) { push("same", a[i]); i++; j++; }
    else if (table[i + 1][j] >= table[i][j + 1]) { push("del", a[i]); i++; }
    else { push("ins", b[j]); j++; }
  }
  while (i < a.length) push("del", a[i++]);
  while (j < b.length) push("ins", b[j++]);
  return parts;
}

function renderDiff() {
  const target = $("diff");
  target.replaceChildren();
  if (!state.item) return;
  const parts = wordDiff(state.item.translation, $("post-edit").value);
  if (parts.every(([kind]) => kind === "same")) {
    target.textContent = "(no changes)";
    return;
  }
  for (const [kind, text] of parts) {
    if (kind === "same") { target.append(text); continue; }
    const node = document.createElement(kind);
    node.textContent = text;
    target.append(node);
  }
}

// ---- actions -------------------------------------------------------------------------------------

// One action at a time: a second key press while a request is in flight is ignored.
async function act(run) {
  if (state.busy || !state.token) return;
  state.busy = true;
  try {
    await run();
  } catch (error) {
    show(error.message, true);
  } finally {
    state.busy = false;
  }
}

const submit = () => act(async () => {
  if (!state.item) return;
  const flags = Array.from($("flags").querySelectorAll("input:checked"), (box) => box.value);
  const comment = $("comment").value.trim();
  const { data } = await api("POST", "/api/judgments", {
    item_id: state.item.item_id,
    score: Number($("score").value),
    post_edit: $("post-edit").value,
    flags,
    comment: comment || null,
    seconds: Math.round((performance.now() - state.shownAt) / 100) / 10,
  });
  show(`Submitted (judgment ${data.judgment_id}).`);
  await loadNext();
});

const skip = () => act(async () => {
  if (!state.item) return;
  await api("POST", "/api/skip", { item_id: state.item.item_id });
  show("Skipped.");
  await loadNext();
});

const undo = () => act(async () => {
  const { data } = await api("POST", "/api/undo");
  show(`Undone (judgment ${data.judgment_id}); the item is back in your queue.`);
  await loadNext();
});

function onKey(event) {
  if (!state.token || $("review").hidden) return;
  if (event.ctrlKey && event.key === "Enter") { event.preventDefault(); submit(); return; }
  if (event.altKey && !event.ctrlKey && event.code === "KeyS") { event.preventDefault(); skip(); return; }
  if (event.altKey && !event.ctrlKey && event.code === "KeyZ") { event.preventDefault(); undo(); return; }
  const flag = /^Digit([1-9])$/.exec(event.code);
  if (event.altKey && !event.ctrlKey && flag && Number(flag[1]) <= state.flags.length) {
    event.preventDefault();
    const box = $("flag-" + state.flags[Number(flag[1]) - 1]);
    box.checked = !box.checked;
    return;
  }
  const typing = ["TEXTAREA", "INPUT"].includes(event.target.tagName) && event.target.type !== "range"
    && event.target.type !== "checkbox";
  if (typing || event.altKey || event.ctrlKey || event.metaKey) return;
  if (/^[0-9]$/.test(event.key)) { event.preventDefault(); setScore(Number(event.key) / 10); }
  else if (event.key === "=" || event.key === "+") { event.preventDefault(); setScore(1); }
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    $("token").value = "";
    signIn(token).then(() => show("")).catch((error) => show(error.message, true));
  });
  $("sign-out").addEventListener("click", signOut);
  $("score").addEventListener("input", () => setScore($("score").value));
  $("post-edit").addEventListener("input", renderDiff);
  $("submit").addEventListener("click", submit);
  $("skip").addEventListener("click", skip);
  $("undo").addEventListener("click", undo);
  $("refresh").addEventListener("click", () => act(loadNext));
  document.addEventListener("keydown", onKey);
  if (state.token) signIn(state.token).catch((error) => show(error.message, true));
});
