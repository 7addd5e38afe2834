"""The page at GET /: type sentences, see their cosine similarity matrix as a coloured table.

One self-contained HTML document: inline style and script, no fonts, images, CDN or any
other address than this server's own /v1/embeddings (a relative URL). The texts are shown
with textContent, never as HTML. With --api-key set, the key typed into the page is sent as
`Authorization: Bearer ...` and kept nowhere.
"""

HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">  <!-- no icon: the browser asks for no /favicon.ico -->
<title>minibert serve</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; padding: 0 1em;
         color: #222; }
  textarea { width: 100%; height: 9em; font: inherit; }
  input { font: inherit; }
  button { font: inherit; padding: 0.3em 1.2em; margin-top: 0.5em; }
  table { border-collapse: collapse; margin-top: 1em; }
  th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; }
  td.score { text-align: right; font-variant-numeric: tabular-nums; }
  th.text { text-align: left; font-weight: normal; max-width: 28em; }
  #status { color: #555; margin-top: 0.5em; }
  .error { color: #b00020; }
</style>
</head>
<body>
<h1>minibert serve</h1>
<p>One sentence per line; the table shows the cosine similarity of every pair
(<span id="model">this server's model</span>).</p>
<textarea id="texts">The chef chopped onions and garlic.
She baked fresh bread this morning.
The telescope saw a distant galaxy.
Astronomers found a new planet.</textarea>
<div><label>API key (only if the server asks for one):
  <input id="key" type="password" autocomplete="off"></label></div>
<button id="go">Compare</button>
<div id="status"></div>
<div id="result"></div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);

function colour(score) {
  // -1..1 -> red..white..green, light enough that black text stays readable
  const s = Math.max(-1, Math.min(1, score));
  const hue = s >= 0 ? 130 : 0;
  const light = 100 - 45 * Math.abs(s);
  return "hsl(" + hue + ", 60%, " + light + "%)";
}

function table(texts, vectors) {
  const t = document.createElement("table");
  const head = t.insertRow();
  head.appendChild(document.createElement("th"));
  texts.forEach((_, j) => {
    const th = document.createElement("th");
    th.textContent = "[" + (j + 1) + "]";
    head.appendChild(th);
  });
  texts.forEach((text, i) => {
    const row = t.insertRow();
    const th = document.createElement("th");
    th.className = "text";
    th.textContent = "[" + (i + 1) + "] " + text;
    row.appendChild(th);
    texts.forEach((_, j) => {
      // the vectors have unit length, so the dot product is the cosine
      let dot = 0;
      for (let k = 0; k < vectors[i].length; k++) dot += vectors[i][k] * vectors[j][k];
      const cell = row.insertCell();
      cell.className = "score";
      cell.textContent = dot.toFixed(3);
      cell.style.background = colour(dot);
    });
  });
  return t;
}

async function compare() {
  const texts = $("texts").value.split("\\n").map((s) => s.trim()).filter((s) => s);
  $("result").textContent = "";
  if (texts.length === 0) { $("status").textContent = "Type at least one sentence."; return; }
  $("status").className = "";
  $("status").textContent = "Embedding " + texts.length + " sentences...";
  const headers = { "Content-Type": "application/json" };
  if ($("key").value) headers["Authorization"] = "Bearer " + $("key").value;
  try {
    const started = performance.now();
    const response = await fetch("v1/embeddings", {
      method: "POST", headers: headers,
      body: JSON.stringify({ input: texts, encoding_format: "float" }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
    const vectors = body.data.map((d) => d.embedding);
    $("model").textContent = body.model + ", " + vectors[0].length + " dimensions";
    $("status").textContent = texts.length + " sentences, " + body.usage.total_tokens +
      " tokens, " + Math.round(performance.now() - started) + " ms";
    $("result").appendChild(table(texts, vectors));
  } catch (err) {
    $("status").className = "error";
    $("status").textContent = "Error: " + err.message;
  }
}
$("go").addEventListener("click", compare);
</script>
</body>
</html>
"""
