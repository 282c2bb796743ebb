// The mrag search page: plain JavaScript, no libraries, no build step.
// Every call goes to this server's /v1 API; the API key, when the server wants one, is asked
// for once and kept in this tab's sessionStorage.
"use strict";

const KEY_NAME = "mrag-api-key";
const $ = (id) => document.getElementById(id);
let pictureQuery = null; // a data: URI when searching by picture
const objectUrls = [];

// -- the API, with the key ---------------------------------------------------------------------

function authHeaders() {
  const key = sessionStorage.getItem(KEY_NAME);
  return key ? { Authorization: "Bearer " + key } : {};
}

function askForKey(message) {
  return new Promise((resolve) => {
    const dialog = $("key-dialog");
    $("key-error").textContent = message || "";
    $("key").value = "";
    const done = (event) => {
      event.preventDefault();
      const value = $("key").value.trim();
      if (!value) return;
      sessionStorage.setItem(KEY_NAME, value);
      $("key-form").removeEventListener("submit", done);
      dialog.close();
      resolve();
    };
    $("key-form").addEventListener("submit", done);
    dialog.showModal();
    $("key").focus();
  });
}

async function api(path, options = {}, retried = false) {
  const response = await fetch(path, {
    ...options,
    headers: { ...(options.headers || {}), ...authHeaders() },
  });
  if (response.status === 401) {
    const wrong = sessionStorage.getItem(KEY_NAME) !== null;
    sessionStorage.removeItem(KEY_NAME);
    if (retried && !wrong) throw new Error("the server refused the API key");
    await askForKey(wrong ? "That key was not accepted; try again." : "");
    return api(path, options, true);
  }
  return response;
}

async function apiJson(path, options) {
  const response = await api(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (body.error && body.error.message) || response.statusText;
    throw new Error(message);
  }
  return body;
}

// -- views -------------------------------------------------------------------------------------

function show(view) {
  for (const name of ["search", "documents"]) {
    const active = name === view;
    $(name + "-view").hidden = !active;
    const tab = $("tab-" + name);
    if (active) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  if (view === "documents") loadDocuments();
}

// -- search ------------------------------------------------------------------------------------

function queryWords(text) {
  return Array.from(new Set(text.toLowerCase().match(/[\p{L}\p{N}]{2,}/gu) || []));
}

function escapeRegExp(word) {
  return word.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// The part of a passage around its first matching word, with every query word in <mark>.
function snippet(text, words, length = 320) {
  const element = document.createElement("p");
  element.className = "snippet";
  let start = 0;
  const lower = text.toLowerCase();
  for (const word of words) {
    const at = lower.indexOf(word);
    if (at >= 0) { start = Math.max(0, at - 80); break; }
  }
  let shown = text.slice(start, start + length);
  if (start > 0) shown = "…" + shown;
  if (start + length < text.length) shown += "…";
  if (!words.length) { element.textContent = shown; return element; }
  // Words are marked where they start a word, so "red" is not marked inside "coloured".
  const pattern = new RegExp("(?<![\\p{L}\\p{N}])(" + words.map(escapeRegExp).join("|") + ")", "giu");
  let last = 0;
  for (const match of shown.matchAll(pattern)) {
    element.append(shown.slice(last, match.index));
    const mark = document.createElement("mark");
    mark.textContent = match[0];
    element.append(mark);
    last = match.index + match[0].length;
  }
  element.append(shown.slice(last));
  return element;
}

async function loadImage(img, id) {
  const response = await api("/v1/images/" + encodeURIComponent(id));
  if (!response.ok) throw new Error("picture " + id + " is not available");
  const url = URL.createObjectURL(await response.blob());
  objectUrls.push(url);
  img.src = url;
  return url;
}

function openViewer(title, url, caption) {
  $("viewer-title").textContent = title;
  $("viewer-image").src = url;
  $("viewer-image").alt = caption || title;
  $("viewer-caption").textContent = caption;
  $("viewer").showModal();
  $("viewer-close").focus();
}

function renderHit(hit, words) {
  const meta = hit.metadata || {};
  const item = document.createElement("li");
  item.className = "hit " + hit.modality;
  const name = meta.file_name || String(meta.source || "?").split("/").pop();
  const where = meta.page != null ? name + ", page " + meta.page : name;
  const element = meta.element || (hit.modality === "image" ? "figure" : "text");
  const body = document.createElement("div");
  const heading = document.createElement("div");
  heading.className = "where";
  heading.textContent = where;
  const details = document.createElement("div");
  details.className = "meta";
  const score = typeof hit.score === "number" ? hit.score.toFixed(3) : "?";
  details.textContent = element + " · score " + score;
  body.append(heading, details, snippet(hit.page_content || "", words));
  if (hit.modality === "image") {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "thumb";
    const img = document.createElement("img");
    img.alt = element + " from " + where + ": " + (hit.page_content || "no caption").slice(0, 120);
    img.loading = "lazy";
    button.append(img);
    button.setAttribute("aria-label", "Show full size: " + img.alt);
    const loaded = loadImage(img, hit.id).catch((error) => { img.alt = error.message; });
    button.addEventListener("click", async () => {
      const url = await loaded;
      if (url) openViewer(where, url, hit.page_content || "");
    });
    item.append(button);
  }
  item.append(body);
  return item;
}

async function search(event) {
  if (event) event.preventDefault();
  const text = $("query").value.trim();
  if (!text && !pictureQuery) { $("search-status").textContent = "Type a query or pick a picture."; return; }
  const filter = {};
  for (const name of ["modality", "element", "source"]) {
    if ($(name).value) filter[name] = $(name).value;
  }
  const k = Math.max(1, Math.min(100, parseInt($("k").value, 10) || 10));
  const body = {
    query: pictureQuery ? { image: pictureQuery } : text,
    k,
    include_images: false,
  };
  if (Object.keys(filter).length) body.filter = filter;
  $("search-status").textContent = "Searching…";
  $("results").replaceChildren();
  while (objectUrls.length) URL.revokeObjectURL(objectUrls.pop());
  try {
    const found = await apiJson("/v1/search", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const words = pictureQuery ? [] : queryWords(text);
    $("results").replaceChildren(...found.data.map((hit) => renderHit(hit, words)));
    $("search-status").textContent = found.data.length
      ? found.data.length + " results" : "Nothing found.";
  } catch (error) {
    $("search-status").textContent = "Search failed: " + error.message;
  }
}

function usePicture(file) {
  if (!file || !file.type.startsWith("image/")) return;
  const reader = new FileReader();
  reader.onload = () => {
    pictureQuery = reader.result;
    $("picture-name").textContent = "Searching by picture: " + file.name;
    $("picture-clear").hidden = false;
    search();
  };
  reader.readAsDataURL(file);
}

function clearPicture() {
  pictureQuery = null;
  $("picture").value = "";
  $("picture-name").textContent = "";
  $("picture-clear").hidden = true;
  $("query").focus();
}

// -- documents ---------------------------------------------------------------------------------

function cell(text, numeric) {
  const td = document.createElement("td");
  td.textContent = String(text);
  if (numeric) td.className = "num";
  return td;
}

async function loadDocuments() {
  let info;
  try {
    info = await apiJson("/v1/documents");
  } catch (error) {
    $("store-summary").textContent = "Cannot list documents: " + error.message;
    return;
  }
  const t = info.totals;
  $("store-summary").textContent = t.sources + " sources, " + t.pages + " pages, " + t.passages
    + " passages, " + t.images + " pictures · model " + info.model + " · " + info.dtype;
  const rows = info.data.map((doc) => {
    const row = document.createElement("tr");
    const name = cell(doc.name);
    name.title = doc.source;
    const actions = document.createElement("td");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "danger";
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", "Delete " + doc.name);
    remove.addEventListener("click", () => deleteDocument(doc));
    actions.append(remove);
    row.append(name, cell(doc.pages, true), cell(doc.passages, true), cell(doc.images, true), actions);
    return row;
  });
  $("documents").tBodies[0].replaceChildren(...rows);
  fillSources(info.data);
}

function fillSources(documents) {
  const select = $("source");
  const chosen = select.value;
  const options = [new Option("all documents", "")];
  for (const doc of documents) options.push(new Option(doc.name, doc.source));
  select.replaceChildren(...options);
  select.value = documents.some((doc) => doc.source === chosen) ? chosen : "";
}

async function deleteDocument(doc) {
  if (!window.confirm("Delete " + doc.name + " and all its passages and pictures?")) return;
  try {
    const done = await apiJson("/v1/documents/" + encodeURIComponent(doc.source), { method: "DELETE" });
    $("store-summary").textContent = "Deleted " + doc.name + " (" + done.points + " points).";
  } catch (error) {
    $("store-summary").textContent = "Delete failed: " + error.message;
  }
  loadDocuments();
}

function uploadRow(file) {
  const item = document.createElement("li");
  const name = document.createElement("span");
  name.textContent = file.name;
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.value = 0;
  bar.setAttribute("aria-label", "Upload of " + file.name);
  const outcome = document.createElement("span");
  outcome.className = "outcome";
  outcome.textContent = "uploading";
  item.append(name, bar, outcome);
  $("uploads").prepend(item);
  return { bar, outcome };
}

// One request per file, so each has its own progress bar.
function sendFile(file, row) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", "/v1/documents");
    for (const [name, value] of Object.entries(authHeaders())) request.setRequestHeader(name, value);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) row.bar.value = Math.round((50 * event.loaded) / event.total);
    };
    request.onload = () => {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch (error) { /* not JSON */ }
      if (request.status === 401) reject(Object.assign(new Error("key"), { unauthorised: true }));
      else if (request.status >= 400) reject(new Error((body.error && body.error.message) || request.statusText));
      else resolve(body);
    };
    request.onerror = () => reject(new Error("the upload was cut off"));
    const form = new FormData();
    form.append("files", file, file.name);
    request.send(form);
  });
}

function describeOutcome(file) {
  const parts = [file.status];
  if (file.status === "ingested") {
    parts.push(file.pages + " pages, " + file.chunks + " passages, " + file.images + " pictures");
  }
  if (file.reason) parts.push(file.reason);
  return parts.join(": ");
}

async function followJob(job, row) {
  while (true) {
    const state = await apiJson("/v1/jobs/" + encodeURIComponent(job.id));
    const file = state.files[0] || {};
    row.outcome.textContent = state.status === "failed" && !file.reason
      ? "failed: " + state.error : describeOutcome(file);
    if (state.status === "done" || state.status === "failed") {
      row.bar.value = 100;
      row.outcome.className = "outcome " + (file.status || state.status);
      return;
    }
    row.bar.value = file.status === "ingesting" ? 75 : 55;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function upload(files) {
  const jobs = [];
  for (const file of files) {
    const row = uploadRow(file);
    try {
      let job;
      try {
        job = await sendFile(file, row);
      } catch (error) {
        if (!error.unauthorised) throw error;
        sessionStorage.removeItem(KEY_NAME);
        await askForKey("");
        job = await sendFile(file, row);
      }
      row.bar.value = 50;
      row.outcome.textContent = "queued";
      jobs.push(followJob(job, row).catch((error) => { row.outcome.textContent = "failed: " + error.message; }));
    } catch (error) {
      row.bar.value = 0;
      row.outcome.className = "outcome failed";
      row.outcome.textContent = "refused: " + error.message;
    }
  }
  await Promise.all(jobs);
  loadDocuments();
}

function dropZone(element, onFiles) {
  element.addEventListener("dragover", (event) => { event.preventDefault(); element.classList.add("dragging"); });
  element.addEventListener("dragleave", () => element.classList.remove("dragging"));
  element.addEventListener("drop", (event) => {
    event.preventDefault();
    element.classList.remove("dragging");
    if (event.dataTransfer && event.dataTransfer.files.length) onFiles(Array.from(event.dataTransfer.files));
  });
}

// -- start -------------------------------------------------------------------------------------

function start() {
  $("tab-search").addEventListener("click", () => show("search"));
  $("tab-documents").addEventListener("click", () => show("documents"));
  $("search-form").addEventListener("submit", search);
  for (const id of ["modality", "element", "source"]) {
    $(id).addEventListener("change", () => { if ($("query").value.trim() || pictureQuery) search(); });
  }
  $("picture").addEventListener("change", () => usePicture($("picture").files[0]));
  $("picture-clear").addEventListener("click", clearPicture);
  dropZone($("search-form"), (files) => usePicture(files[0]));
  $("upload").addEventListener("change", () => { upload(Array.from($("upload").files)); $("upload").value = ""; });
  dropZone($("drop"), upload);
  $("viewer-close").addEventListener("click", () => $("viewer").close());
  $("query").focus();
  apiJson("/v1/documents").then((info) => fillSources(info.data)).catch(() => {});
}

document.addEventListener("DOMContentLoaded", start);
