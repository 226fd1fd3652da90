"""The catalog's web page: one HTML document with plain JavaScript (no build step), calling the same API.

Browse by label (cover grid with brief and duration; click to play, with "watch next"), keyword search over
titles and briefs, and upload a clip to see the classifier's label probabilities and similar videos.
"""

PAGE_HTML = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Video catalog</title>
<link rel="icon" href="data:,">
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #f4f4f6; color: #222; }
  header { background: #20232a; color: #fff; padding: 10px 18px; display: flex; gap: 18px; align-items: center;
           flex-wrap: wrap; }
  header h1 { font-size: 18px; margin: 0 12px 0 0; }
  header input, header select, header button { font-size: 14px; padding: 4px 8px; }
  main { display: flex; gap: 16px; padding: 14px 18px; align-items: flex-start; }
  #browse { flex: 3; }
  #side { flex: 2; min-width: 300px; }
  .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 12px; }
  .card { background: #fff; border-radius: 6px; overflow: hidden; box-shadow: 0 1px 3px #0002; cursor: pointer; }
  .card img { width: 100%; aspect-ratio: 1; object-fit: cover; display: block; background: #ccc; }
  .card .meta { padding: 6px 8px; font-size: 12px; }
  .card .title { font-weight: 600; font-size: 13px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  .card .brief { color: #555; height: 2.6em; overflow: hidden; }
  .tag { display: inline-block; background: #e4e9f7; color: #334; border-radius: 3px; padding: 0 5px; margin-right: 4px; }
  .panel { background: #fff; border-radius: 6px; box-shadow: 0 1px 3px #0002; padding: 12px; margin-bottom: 14px; }
  .panel h2 { font-size: 15px; margin: 0 0 8px; }
  video { width: 100%; max-height: 320px; background: #000; }
  .bar { display: flex; align-items: center; gap: 6px; font-size: 13px; margin: 2px 0; }
  .bar span.name { width: 110px; }
  .bar div.fill { height: 10px; background: #4a7bd6; border-radius: 2px; }
  .list .row { display: flex; gap: 8px; align-items: center; cursor: pointer; padding: 3px 0; font-size: 13px; }
  .list img { width: 48px; height: 48px; object-fit: cover; border-radius: 3px; }
  .muted { color: #777; font-size: 12px; }
  #pager button { margin: 10px 4px 0 0; }
  .error { color: #b00020; }
</style>
</head>
<body>
<header>
  <h1>Video catalog</h1>
  <label>Label <select id="label"><option value="">all</option></select></label>
  <form id="search-form"><input id="q" type="search" placeholder="search briefs" size="24">
    <button type="submit">Search</button></form>
  <span id="status" class="muted"></span>
</header>
<main>
  <section id="browse">
    <div id="heading" class="muted"></div>
    <div id="grid" class="grid"></div>
    <div id="pager"><button id="prev">&laquo; previous</button><button id="next">next &raquo;</button></div>
  </section>
  <section id="side">
    <div class="panel">
      <h2>Classify a clip</h2>
      <form id="upload-form">
        <input id="upload-file" type="file" accept="video/*" required>
        <input id="upload-brief" type="text" placeholder="brief (optional)" size="18">
        <button type="submit" id="upload-button">Upload</button>
      </form>
      <div id="upload-error" class="error"></div>
      <div id="probabilities"></div>
      <h2 id="similar-heading" hidden style="margin-top:10px">Similar videos</h2>
      <div id="similar" class="list"></div>
    </div>
    <div class="panel" id="player-panel" hidden>
      <h2 id="player-title"></h2>
      <video id="player" controls muted></video>
      <div id="player-meta" class="muted"></div>
      <h2 style="margin-top:10px">Watch next</h2>
      <div id="watch-next" class="list"></div>
    </div>
  </section>
</main>
<script>
const PAGE = 24;
let offset = 0, total = 0, mode = "browse";
const $ = (id) => document.getElementById(id);

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}
function fmt(seconds) {
  const s = Math.round(seconds || 0);
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}
function text(tag, value, cls) {
  const el = document.createElement(tag);
  el.textContent = value;
  if (cls) el.className = cls;
  return el;
}
function card(item) {
  const el = document.createElement("div");
  el.className = "card";
  el.dataset.id = item.video_id;
  const img = document.createElement("img");
  img.src = "/items/" + encodeURIComponent(item.video_id) + "/cover";
  img.alt = item.title || item.video_id;
  img.loading = "lazy";
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.append(text("div", item.title || item.video_id, "title"));
  const line = document.createElement("div");
  if (item.label) line.append(text("span", item.label, "tag"));
  line.append(text("span", fmt(item.duration_s), "muted"));
  meta.append(line, text("div", item.brief || "", "brief"));
  el.append(img, meta);
  el.addEventListener("click", () => play(item.video_id));
  return el;
}
function row(item) {
  const el = document.createElement("div");
  el.className = "row";
  el.dataset.id = item.video_id;
  const img = document.createElement("img");
  img.src = "/items/" + encodeURIComponent(item.video_id) + "/cover";
  img.alt = "";
  const label = item.label ? " [" + item.label + "]" : "";
  el.append(img, text("span", (item.title || item.video_id) + label + "  " + Number(item.score).toFixed(3)));
  el.addEventListener("click", () => play(item.video_id));
  return el;
}
function show(items, heading) {
  $("grid").replaceChildren(...items.map(card));
  $("heading").textContent = heading;
  $("prev").disabled = mode !== "browse" || offset === 0;
  $("next").disabled = mode !== "browse" || offset + PAGE >= total;
}
async function browse() {
  mode = "browse";
  const label = $("label").value;
  const query = "?offset=" + offset + "&limit=" + PAGE + (label ? "&label=" + encodeURIComponent(label) : "");
  const body = await api("/index/list" + query);
  total = body.total;
  show(body.items, (label || "All labels") + ": " + total + " videos" +
       (total ? " (" + (offset + 1) + "-" + Math.min(offset + PAGE, total) + ")" : ""));
}
async function search(event) {
  event.preventDefault();
  const q = $("q").value.trim();
  if (!q) { offset = 0; return browse(); }
  mode = "search";
  const label = $("label").value;
  const body = await api("/search?q=" + encodeURIComponent(q) + "&top_k=48" +
                         (label ? "&label=" + encodeURIComponent(label) : ""));
  show(body.results, body.results.length + " results for \u201c" + q + "\u201d");
}
async function play(id) {
  const item = await api("/items/" + encodeURIComponent(id));
  $("player-panel").hidden = false;
  $("player-title").textContent = item.title || item.video_id;
  $("player-meta").textContent = (item.label || "") + "  " + fmt(item.duration_s) + "  " + (item.brief || "");
  if (item.has_video) {
    $("player").src = "/items/" + encodeURIComponent(id) + "/video";
    $("player").play().catch(() => {});
  }
  const next = await api("/recommend", {method: "POST", headers: {"Content-Type": "application/json"},
                                        body: JSON.stringify({video_id: id, top_k: 6})});
  $("watch-next").replaceChildren(...next.recommendations.map(row));
}
async function upload(event) {
  event.preventDefault();
  $("upload-error").textContent = "";
  $("probabilities").replaceChildren(text("div", "analysing\u2026", "muted"));
  const form = () => {
    const data = new FormData();
    data.append("file", $("upload-file").files[0]);
    data.append("brief", $("upload-brief").value);
    return data;
  };
  try {
    const classified = await api("/classify", {method: "POST", body: form()});
    const bars = classified.probabilities.map((p) => {
      const el = document.createElement("div");
      el.className = "bar";
      const fill = document.createElement("div");
      fill.className = "fill";
      fill.style.width = Math.max(2, Math.round(p.probability * 160)) + "px";
      el.append(text("span", p.label, "name"), fill, text("span", (100 * p.probability).toFixed(1) + "%"));
      return el;
    });
    $("probabilities").replaceChildren(text("div", "Predicted: " + classified.label), ...bars);
    const data = form();
    data.append("top_k", "6");
    const similar = await api("/recommend/upload", {method: "POST", body: data});
    $("similar-heading").hidden = false;
    $("similar").replaceChildren(...similar.recommendations.map(row));
  } catch (error) {
    $("probabilities").replaceChildren();
    $("upload-error").textContent = error.message;
  }
}
async function start() {
  const [health, labels] = await Promise.all([api("/health"), api("/labels")]);
  $("status").textContent = health.index_size + " videos \u00b7 " + health.storage + " \u00b7 " +
    (health.model_loaded ? "classifier on " + health.device : "no classifier");
  const names = Object.keys(labels.counts).sort();
  for (const name of names) {
    const option = text("option", name + " (" + labels.counts[name] + ")");
    option.value = name;
    $("label").append(option);
  }
  $("label").addEventListener("change", () => { offset = 0; $("q").value = ""; browse(); });
  $("search-form").addEventListener("submit", search);
  $("upload-form").addEventListener("submit", upload);
  $("prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); browse(); });
  $("next").addEventListener("click", () => { offset += PAGE; browse(); });
  await browse();
  document.body.dataset.ready = "1";
}
start().catch((error) => { $("status").textContent = error.message; });
</script>
</body>
</html>
"""
