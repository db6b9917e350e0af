/* The course site's search: every section of every page (search-index.js, made at build time), no service.
   A section matches when it holds every word of the query; sections whose heading holds a word come first. */
(function () {
  "use strict";
  var index = window.SEARCH_INDEX || [];
  var box = document.getElementById("q"), list = document.getElementById("results"),
      status = document.getElementById("status");
  function words(q) { return q.toLowerCase().split(/\s+/).filter(function (w) { return w.length > 0; }); }
  function count(text, w) { var n = 0, i = text.indexOf(w); while (i >= 0) { n++; i = text.indexOf(w, i + w.length); } return n; }
  function snippet(text, w) {
    var i = Math.max(0, text.toLowerCase().indexOf(w)), start = Math.max(0, i - 80);
    return [(start > 0 ? "…" : "") + text.slice(start, i), text.slice(i, i + w.length),
            text.slice(i + w.length, i + w.length + 160) + "…"];
  }
  function search(q) {
    var ws = words(q);
    list.textContent = "";
    if (!ws.length) { status.textContent = ""; return; }
    var hits = [];
    index.forEach(function (d) {
      var all = (d.title + " " + d.section + " " + d.text).toLowerCase(), head = d.section.toLowerCase();
      if (!ws.every(function (w) { return all.indexOf(w) >= 0; })) return;
      var score = 0;
      ws.forEach(function (w) { score += count(all, w) + (head.indexOf(w) >= 0 ? 10 : 0); });
      hits.push([score, d]);
    });
    hits.sort(function (a, b) { return b[0] - a[0]; });
    status.textContent = hits.length + (hits.length === 1 ? " section matches " : " sections match ") + "“" + q + "”";
    hits.slice(0, 60).forEach(function (h) {
      var d = h[1], li = document.createElement("li"), a = document.createElement("a"),
          where = document.createElement("div"), p = document.createElement("p"), parts = snippet(d.text, ws[0]),
          mark = document.createElement("mark");
      a.href = d.page + (d.anchor ? "#" + d.anchor : "");
      a.textContent = d.section;
      where.className = "where";
      where.textContent = d.title;
      mark.textContent = parts[1];
      p.appendChild(document.createTextNode(parts[0]));
      p.appendChild(mark);
      p.appendChild(document.createTextNode(parts[2]));
      li.appendChild(a); li.appendChild(where); li.appendChild(p);
      list.appendChild(li);
    });
  }
  var q = new URLSearchParams(window.location.search).get("q") || "";
  box.value = q;
  search(q);
  box.addEventListener("input", function () { search(box.value); });
})();
