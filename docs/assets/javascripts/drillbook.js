/* drillbook: the few behaviours the site adds to Material, all local, no request to another host.
 *
 * - The runbook catalogue filter: hides the rows that do not contain every word typed.
 * - The template form: fills [[placeholders]] into every template of the page and
 *   computes the next update from the chosen severity (policy data in the page); what
 *   was typed survives a reload of the tab.
 * - Escalation ladders: drawn with Mermaid when this build bundles it
 *   (assets/vendor/mermaid.min.js, installed by `make vendor`); otherwise the
 *   Mermaid source stays visible as text.
 * - Code colours: highlight.js (assets/vendor/highlight.min.js, installed by
 *   `make vendor`) colours code blocks in the browser; the build leaves them plain,
 *   which keeps it fast and the pages small. Without it, code stays uncoloured.
 * - Print: every collapsed output is opened before printing.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  var assets = script ? script.src.replace(/javascripts\/drillbook\.js(\?.*)?$/, "") : "";

  /* ------------------------------------------------------------------ accessible names
   Material's search overlay is a dialog without a name; a screen reader announces it as one. */
  document.querySelectorAll(".md-search[role=dialog]:not([aria-label])").forEach(function (dialog) {
    dialog.setAttribute("aria-label", "Search");
  });

  /* ------------------------------------------------------------------ tables
   Each cell carries its column's name (shown when a table becomes cards). A table that does not
   fit its column becomes one card per row; the check runs again when the window changes size.
   While it is cards, roles keep it a table for assistive technology. */
  var tables = Array.prototype.slice.call(document.querySelectorAll(".md-typeset table"));
  tables.forEach(function (table) {
    var names = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
      return th.textContent.trim();
    });
    table.querySelectorAll("tbody tr").forEach(function (row) {
      Array.prototype.forEach.call(row.children, function (cell, index) {
        if (names[index]) cell.setAttribute("data-label", names[index]);
      });
    });
  });

  var ROLES = [["thead", "rowgroup"], ["tbody", "rowgroup"], ["tr", "row"], ["th", "columnheader"], ["td", "cell"]];

  function cards(table, on) {
    table.classList.toggle("drillbook-cards", on);
    if (on) table.setAttribute("role", "table"); else table.removeAttribute("role");
    ROLES.forEach(function (pair) {
      table.querySelectorAll(pair[0]).forEach(function (el) {
        if (on) el.setAttribute("role", pair[1]); else el.removeAttribute("role");
      });
    });
  }

  function fit() {
    tables.forEach(function (table) {
      cards(table, false);
      var column = table.closest("article") || document.body;
      var box = table.closest(".md-typeset__scrollwrap") || table.parentElement;
      var wide = table.scrollWidth > column.clientWidth + 1 || box.scrollWidth > box.clientWidth + 1;
      if (wide) cards(table, true);
    });
  }

  if (tables.length) {
    fit();
    window.addEventListener("load", fit);
    var resizing = null;
    window.addEventListener("resize", function () {
      clearTimeout(resizing);
      resizing = setTimeout(fit, 100);
    });
  }

  /* ------------------------------------------------------------------ catalogue filter */
  function words(text) {
    return text.toLowerCase().split(/\s+/).filter(Boolean);
  }

  document.querySelectorAll("input.drillbook-filter").forEach(function (input) {
    var container = document.getElementById(input.dataset.filter);
    if (!container) return;
    var rows = Array.prototype.slice.call(container.querySelectorAll("tbody tr"));
    var status = document.createElement("span");
    status.className = "drillbook-muted drillbook-filter-status";
    input.insertAdjacentElement("afterend", status);
    input.addEventListener("input", function () {
      var wanted = words(input.value);
      var shown = 0;
      rows.forEach(function (row) {
        var keywords = row.querySelector("[data-keywords]");
        var text = (row.textContent + " " + (keywords ? keywords.dataset.keywords : "")).toLowerCase();
        var match = wanted.every(function (w) { return text.indexOf(w) !== -1; });
        row.hidden = !match;
        if (match) shown += 1;
      });
      status.textContent = wanted.length ? " " + shown + " of " + rows.length + " runbooks" : "";
    });
  });

  /* ------------------------------------------------------------------ template form */
  var PLACEHOLDER = /\[\[([A-Za-z0-9_]+)\]\]/g;

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function utc(date) {
    return date.getUTCFullYear() + "-" + pad(date.getUTCMonth() + 1) + "-" + pad(date.getUTCDate()) +
      " " + pad(date.getUTCHours()) + ":" + pad(date.getUTCMinutes()) + " UTC";
  }

  function setupForm(form) {
    var data = document.getElementById("drillbook-policy");
    var policy = data ? JSON.parse(data.textContent) : { levels: [] };
    var blocks = Array.prototype.slice.call(document.querySelectorAll(".md-content pre > code"))
      .filter(function (code) { return /\[\[[A-Za-z0-9_]+\]\]/.test(code.textContent); });
    blocks.forEach(function (code) {
      code.dataset.template = code.textContent;
      code.closest("pre").classList.add("drillbook-template");
    });
    var computed = Array.prototype.slice.call(form.querySelectorAll("[data-placeholder]"));

    function level(id) {
      return policy.levels.filter(function (l) { return l.id === id; })[0] || null;
    }

    function values() {
      var v = {};
      Array.prototype.forEach.call(form.elements, function (el) {
        if (el.name && el.value.trim()) v[el.name] = el.value.trim();
      });
      if (v.start_time) {
        var start = new Date(v.start_time + "Z");
        if (!isNaN(start)) v.start_time = utc(start);
      }
      var chosen = level(v.severity);
      if (chosen) {
        var now = new Date();
        var due = new Date(now.getTime() + chosen.update_every_s * 1000);
        v.severity = chosen.label;
        v.severity_name = chosen.name;
        v.update_every = chosen.update_every;
        v.acknowledge_within = chosen.acknowledge_within;
        v.resolve_within = chosen.resolve_within;
        v.next_update_due = utc(due);
        form.dataset.nextUpdateDue = String(due.getTime());
      } else {
        delete form.dataset.nextUpdateDue;
      }
      return v;
    }

    function fill() {
      var v = values();
      var replace = function (_, name) { return v[name] !== undefined ? v[name] : "[[" + name + "]]"; };
      blocks.forEach(function (code) {
        code.textContent = code.dataset.template.replace(PLACEHOLDER, replace);
      });
      computed.forEach(function (el) {
        el.textContent = ("[[" + el.dataset.placeholder + "]]").replace(PLACEHOLDER, replace);
      });
    }

    /* What the responder typed survives a reload of this tab, and only of this tab: incident
       details stay in sessionStorage, which the browser drops when the tab closes. */
    var KEPT = "drillbook-template-form";

    function keep() {
      var kept = {};
      Array.prototype.forEach.call(form.elements, function (el) {
        if (el.name) kept[el.name] = el.value;
      });
      try { sessionStorage.setItem(KEPT, JSON.stringify(kept)); } catch (e) { /* storage off: nothing kept */ }
    }

    function restore() {
      var kept = null;
      try { kept = JSON.parse(sessionStorage.getItem(KEPT) || "null"); } catch (e) { kept = null; }
      if (!kept) return;
      Array.prototype.forEach.call(form.elements, function (el) {
        if (el.name && typeof kept[el.name] === "string") el.value = kept[el.name];
      });
    }

    form.addEventListener("input", function () { fill(); keep(); });
    form.addEventListener("change", function () { fill(); keep(); });
    form.addEventListener("reset", function () {
      try { sessionStorage.removeItem(KEPT); } catch (e) { /* storage off */ }
      setTimeout(fill, 0);
    });
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    restore();
    fill();
  }

  var form = document.getElementById("drillbook-template-form");
  if (form) setupForm(form);

  /* ------------------------------------------------------------------ Mermaid ladders */
  var diagrams = document.querySelectorAll("pre.drillbook-mermaid");
  if (diagrams.length) {
    var scheme = function () {
      return document.body.getAttribute("data-md-color-scheme") === "slate" ? "dark" : "default";
    };
    var draw = function () {
      if (typeof window.mermaid === "undefined") return;
      window.mermaid.initialize({ startOnLoad: false, theme: scheme(), securityLevel: "strict" });
      Array.prototype.forEach.call(diagrams, function (pre, index) {
        var source = pre.dataset.source || pre.textContent;
        pre.dataset.source = source;
        window.mermaid.render("drillbook-ladder-" + index + "-" + Date.now(), source).then(function (out) {
          var figure = document.createElement("div");
          figure.className = "drillbook-ladder";
          figure.dataset.level = pre.dataset.level || "";
          figure.innerHTML = out.svg;
          var previous = pre.previousElementSibling;
          if (previous && previous.classList.contains("drillbook-ladder")) previous.remove();
          pre.insertAdjacentElement("beforebegin", figure);
          pre.style.display = "none";
        });
      });
    };
    var tag = document.createElement("script");
    tag.src = assets + "vendor/mermaid.min.js";
    tag.onload = draw;
    tag.onerror = function () {
      Array.prototype.forEach.call(diagrams, function (pre) { pre.classList.add("drillbook-mermaid-source"); });
    };
    document.body.appendChild(tag);
    new MutationObserver(draw).observe(document.body, { attributes: true, attributeFilter: ["data-md-color-scheme"] });
  }

  /* ------------------------------------------------------------------ code colours
   highlight.js knows no PromQL: those blocks stay plain, as text does. */
  var blocks = document.querySelectorAll(
    'pre > code[class*="language-"]:not(.language-text):not(.language-promql)'
  );
  if (blocks.length) {
    var colour = document.createElement("script");
    colour.src = assets + "vendor/highlight.min.js";
    colour.onload = function () {
      window.hljs.configure({ ignoreUnescapedHTML: true });
      Array.prototype.forEach.call(blocks, function (code) { window.hljs.highlightElement(code); });
    };
    document.body.appendChild(colour);
  }

  /* ------------------------------------------------------------------ print contents
   `make print` prints the print page twice: the second time the URL gives the page on which
   each section starts (?pages=id:3,id:7), written here beside its entry in the contents. */
  var numbers = new URLSearchParams(window.location.search).get("pages");
  if (numbers) {
    numbers.split(",").forEach(function (pair) {
      var parts = pair.split(":");
      var slot = document.querySelector('.drillbook-toc-page[data-page-of="' + parts[0] + '"]');
      if (slot && /^\d+$/.test(parts[1] || "")) slot.textContent = parts[1];
    });
  }

  /* ------------------------------------------------------------------ print */
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  });
})();
