/* flowledger UI behaviour: local times, theme, copy buttons, keyboard, runs-list polling,
   the run timeline (a canvas that draws only the rows in view) and analytics charts. */
(function () {
  "use strict";
  var root = document.body.dataset.root || "";

  // -- times in the browser's zone (UTC stays in the title) ---------------------------
  var thisYear = new Intl.DateTimeFormat(undefined, {month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23"});
  var otherYear = new Intl.DateTimeFormat(undefined, {year: "numeric", month: "short",
    day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23"});
  // Log lines show the time of day to the millisecond (data-clock).
  var clock = new Intl.DateTimeFormat(undefined, {hour: "2-digit", minute: "2-digit",
    second: "2-digit", fractionalSecondDigits: 3, hourCycle: "h23"});
  function localTimes(scope) {
    var year = new Date().getFullYear();
    (scope || document).querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d)) return;
      t.textContent = t.hasAttribute("data-clock") ? clock.format(d)
        : (d.getFullYear() === year ? thisYear : otherYear).format(d);
    });
  }

  // -- theme: follows the system until switched; the choice is remembered -------------
  function toggleTheme() {
    var html = document.documentElement;
    var dark = html.dataset.theme ? html.dataset.theme === "dark"
      : window.matchMedia("(prefers-color-scheme: dark)").matches;
    html.dataset.theme = dark ? "light" : "dark";
    localStorage.setItem("flowledger-theme", html.dataset.theme);
    window.dispatchEvent(new Event("flowledger:theme"));
  }

  // -- copy buttons --------------------------------------------------------------------
  function copy(button) {
    var text = button.dataset.copy;
    if (text === undefined && button.dataset.copyTarget) {
      var el = document.querySelector(button.dataset.copyTarget);
      text = !el ? "" : el.tagName === "TEMPLATE" ? el.content.textContent : el.textContent;
    }
    var done = function () {
      var before = button.textContent; button.textContent = "Copied";
      setTimeout(function () { button.textContent = before; }, 1200);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {});
    } else {
      var area = document.createElement("textarea"); area.value = text;
      document.body.appendChild(area); area.select();
      try { document.execCommand("copy"); done(); } finally { area.remove(); }
    }
  }

  // -- runs list: compare selection, and polling with ETags ------------------------------
  var picked = [];
  function syncPicks(scope) {
    (scope || document).querySelectorAll(".pick-run").forEach(function (box) {
      box.checked = picked.indexOf(box.value) >= 0;
    });
    var go = document.getElementById("compare-go");
    if (!go) return;
    go.disabled = picked.length !== 2;
    document.getElementById("compare-a").value = picked[0] || "";
    document.getElementById("compare-b").value = picked[1] || "";
  }
  function onPick(box) {
    picked = picked.filter(function (id) { return id !== box.value; });
    if (box.checked) picked.push(box.value);
    if (picked.length > 2) picked = picked.slice(-2);
    syncPicks();
  }

  function pollRuns(table) {
    var url = table.dataset.rowsUrl, etag = table.dataset.etag || "";
    var body = document.getElementById("runs-body");
    var busy = false;
    function tick() {
      if (busy || document.visibilityState !== "visible") return;
      busy = true;
      fetch(url, {headers: {"If-None-Match": etag}, cache: "no-store", credentials: "same-origin"})
        .then(function (r) {
          if (r.status === 401) { location.reload(); return null; }
          if (r.status !== 200) return null;
          etag = r.headers.get("ETag") || etag;
          table.dataset.etag = etag;
          return r.text();
        })
        .then(function (html) {
          if (html === null || html === undefined) return;
          body.innerHTML = html;   // same row heights: no layout shift
          localTimes(body); syncPicks(body);
          table.dataset.updates = String(Number(table.dataset.updates || 0) + 1);
        })
        .catch(function () {})
        .finally(function () { busy = false; });
    }
    setInterval(tick, Number(table.dataset.poll || 2000));
  }

  // -- colours from the stylesheet --------------------------------------------------------
  // Custom properties hold light-dark() pairs, which only an element's computed colour
  // resolves: a hidden probe element reads them for the canvas and the charts.
  var probe = null;
  function cssColor(name) {
    if (!probe) {
      probe = document.createElement("span"); probe.hidden = true;
      document.body.appendChild(probe);
    }
    probe.style.color = "var(" + name + ")";
    return getComputedStyle(probe).color;
  }

  // -- the timeline ---------------------------------------------------------------------
  var COLORS = {completed: "--bar-ok", failed: "--bar-bad", running: "--bar-run",
    pending: "--bar-wait", skipped: "--bar-wait", cancelled: "--bar-cancel",
    interrupted: "--bar-warn", unrecorded: "--bar-wait"};
  var ROW = 22, AXIS = 26, LABEL = 200, BAR = 12;

  function niceStep(span, px) {
    var raw = span / Math.max(px / 90, 1), pow = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 5, 10], i = 0;
    while (steps[i] * pow < raw) i++;
    return steps[i] * pow;
  }
  function fmtMs(ms) {
    var a = Math.abs(ms);
    if (a === 0) return "0";
    if (a < 1) return ms.toFixed(2) + " ms";
    if (a < 1000) return (a < 10 ? ms.toFixed(1) : ms.toFixed(0)) + " ms";
    if (a < 60000) return (ms / 1000).toFixed(a < 10000 ? 2 : 1) + " s";
    if (a < 3600000) return Math.floor(ms / 60000) + " min " + Math.round((ms % 60000) / 1000) + " s";
    return (ms / 3600000).toFixed(1) + " h";
  }

  function Timeline(box, source) {
    this.box = box; this.source = source;
    this.canvas = document.createElement("canvas");
    this.canvas.setAttribute("role", "img");
    this.tip = document.createElement("div"); this.tip.className = "tl-tip"; this.tip.hidden = true;
    box.appendChild(this.canvas); box.appendChild(this.tip);
    this.expanded = {}; this.scroll = 0; this.fitted = true;
    this.load(JSON.parse(source.textContent));
    this.bind();
    var self = this;
    new ResizeObserver(function () { self.resize(); }).observe(box);
    window.addEventListener("flowledger:theme", function () { self.draw(); });
  }
  Timeline.prototype.load = function (data) {
    this.data = data; this.runId = data.run;
    var rows = data.steps.map(function (s) { return Object.assign({run: data.run, depth: 0}, s); });
    var self = this;
    Object.keys(this.expanded).forEach(function (child) {
      var group = self.expanded[child];
      var at = rows.findIndex(function (r) { return r.child === child; });
      if (at >= 0 && group.rows) rows.splice.apply(rows, [at + 1, 0].concat(group.rows));
    });
    this.rows = rows;
    this.span = Math.max(data.span || 1, 1);
    if (this.fitted || this.v1 === undefined) this.fit(true);
    var failed = 0;
    rows.forEach(function (r) { r.a.forEach(function (a) { if (a[2] === "failed" || a[2] === "interrupted") failed++; }); });
    this.box.dataset.bars = String(rows.filter(function (r) { return r.depth === 0; }).length);
    this.box.dataset.rows = String(rows.length);
    this.box.dataset.failedAttempts = String(failed);
    this.box.dataset.status = data.status;
    this.canvas.setAttribute("aria-label", "Timeline of " + this.box.dataset.bars +
      " steps; the steps table below lists the same steps.");
    var want = Math.min(Math.max(rows.length * ROW + AXIS + 8, 120), 520);
    if (Math.abs(this.box.clientHeight - want) > 1) this.box.style.height = want + "px";
    this.resize();
    this.box.dataset.ready = "1";
  };
  // Fitted, the axis spans the rows in view (the whole run when every row is in view):
  // scrolling a 10,000-step run then shows each stretch of steps at a readable scale.
  Timeline.prototype.fit = function (quiet) {
    this.fitted = true; this.fitRows();
    if (!quiet) this.draw();
  };
  Timeline.prototype.fitRows = function () {
    var first = Math.floor(this.scroll / ROW);
    var last = Math.min(this.rows.length, Math.ceil((this.scroll + (this.h || 300) - AXIS) / ROW));
    var lo = Infinity, hi = -Infinity;
    for (var i = first; i < last; i++) {
      var r = this.rows[i];
      if (r.t0 !== null && r.t0 < lo) lo = r.t0;
      if (r.t1 !== null && r.t1 > hi) hi = r.t1;
    }
    if (last - first >= this.rows.length || !isFinite(lo)) { lo = 0; hi = this.span; }
    var pad = Math.max((hi - lo) * 0.02, 0.01);
    this.v0 = lo - pad; this.v1 = hi + pad;
  };
  Timeline.prototype.whole = function () {
    var pad = this.span * 0.02;
    this.v0 = -pad; this.v1 = this.span + pad; this.fitted = false; this.draw();
  };
  Timeline.prototype.resize = function () {
    var r = window.devicePixelRatio || 1, w = this.box.clientWidth, h = this.box.clientHeight;
    this.w = w; this.h = h; this.canvas.width = w * r; this.canvas.height = h * r;
    this.canvas.style.width = w + "px"; this.canvas.style.height = h + "px";
    this.ctx = this.canvas.getContext("2d"); this.ctx.setTransform(r, 0, 0, r, 0, 0);
    this.clampScroll(); this.draw();
  };
  Timeline.prototype.clampScroll = function () {
    var max = Math.max(this.rows.length * ROW - (this.h - AXIS), 0);
    this.scroll = Math.min(Math.max(this.scroll, 0), max);
  };
  Timeline.prototype.x = function (t) { return LABEL + (t - this.v0) / (this.v1 - this.v0) * (this.w - LABEL - 8); };
  Timeline.prototype.t = function (x) { return this.v0 + (x - LABEL) / (this.w - LABEL - 8) * (this.v1 - this.v0); };
  Timeline.prototype.draw = function () {
    if (this.pending) return;
    var self = this; this.pending = true;
    requestAnimationFrame(function () { self.pending = false; self.paint(); });
  };
  Timeline.prototype.paint = function () {
    if (this.fitted) this.fitRows();
    var c = this.ctx, colors = {};
    var v = function (name) { return colors[name] || (colors[name] = cssColor(name)); };
    c.clearRect(0, 0, this.w, this.h);
    c.font = "12px " + getComputedStyle(document.body).fontFamily; c.textBaseline = "middle";
    // axis
    var step = niceStep(this.v1 - this.v0, this.w - LABEL);
    c.fillStyle = v("--muted"); c.strokeStyle = v("--border"); c.lineWidth = 1;
    for (var t = Math.ceil(this.v0 / step) * step; t <= this.v1; t += step) {
      var x = Math.round(this.x(t)) + 0.5;
      c.beginPath(); c.moveTo(x, AXIS - 4); c.lineTo(x, this.h); c.stroke();
      c.fillText(fmtMs(t), x + 3, AXIS / 2);
    }
    c.beginPath(); c.moveTo(0, AXIS + 0.5); c.lineTo(this.w, AXIS + 0.5); c.stroke();
    // rows in view only
    var first = Math.floor(this.scroll / ROW);
    var last = Math.min(this.rows.length, Math.ceil((this.scroll + this.h - AXIS) / ROW) + 1);
    c.save(); c.beginPath(); c.rect(0, AXIS + 1, this.w, this.h - AXIS); c.clip();
    for (var i = first; i < last; i++) {
      var r = this.rows[i], y = AXIS + i * ROW - this.scroll;
      if (i === this.hover) { c.fillStyle = v("--surface-2"); c.fillRect(0, y, this.w, ROW); }
      var indent = 8 + r.depth * 14;
      c.fillStyle = v("--muted");
      var label = (r.child ? (this.expanded[r.child] ? "▾ " : "▸ ") : "") + r.p + " " + r.n;
      c.fillText(label.length > 28 - r.depth * 2 ? label.slice(0, 27 - r.depth * 2) + "…" : label, indent, y + ROW / 2);
      if (r.t0 === null || r.t1 === null) continue;
      var x0 = this.x(r.t0), x1 = Math.max(this.x(r.t1), x0 + 2);
      if (x1 < LABEL || x0 > this.w) continue;
      x0 = Math.max(x0, LABEL);
      var top = y + (ROW - BAR) / 2;
      c.fillStyle = v(COLORS[r.s] || "--bar-wait");
      c.fillRect(x0, top, x1 - x0, BAR);
      // earlier attempts as their own segments; failed ones hatched in the failure colour
      for (var k = 0; k < r.a.length; k++) {
        var a = r.a[k];
        if (a[2] !== "failed" && a[2] !== "interrupted") continue;
        var a0 = Math.max(this.x(a[0]), LABEL), a1 = Math.max(this.x(a[1]), a0 + 2);
        c.fillStyle = v(a[2] === "failed" ? "--bar-bad" : "--bar-warn");
        c.fillRect(a0, top, a1 - a0, BAR);
        c.strokeStyle = v("--surface"); c.beginPath();
        for (var hx = a0 - BAR; hx < a1; hx += 5) { c.moveTo(Math.max(hx, a0), top + BAR); c.lineTo(Math.min(hx + BAR, a1), top); }
        c.stroke();
        c.fillStyle = v("--surface"); c.fillRect(a1 - 1, top, 1, BAR);
      }
      if (r.open) { c.fillStyle = v("--text"); c.fillText("…", x1 + 3, y + ROW / 2); }
    }
    c.restore();
  };
  Timeline.prototype.rowAt = function (y) {
    if (y < AXIS) return -1;
    var i = Math.floor((y - AXIS + this.scroll) / ROW);
    return i < this.rows.length ? i : -1;
  };
  Timeline.prototype.zoom = function (factor, atX) {
    var center = atX === undefined ? (this.v0 + this.v1) / 2 : this.t(atX);
    var span = Math.max((this.v1 - this.v0) * factor, 0.01);
    var share = atX === undefined ? 0.5 : (center - this.v0) / (this.v1 - this.v0);
    this.v0 = center - span * share; this.v1 = this.v0 + span; this.fitted = false; this.draw();
  };
  Timeline.prototype.open = function (r) {
    if (window.htmx) htmx.ajax("GET", root + "/runs/" + r.run + "/steps/" + r.p, {target: "#step-panel", swap: "innerHTML"});
  };
  Timeline.prototype.toggle = function (r) {
    var self = this, id = r.child;
    if (this.expanded[id]) { delete this.expanded[id]; this.load(this.data); return; }
    this.expanded[id] = {rows: null};
    fetch(root + "/runs/" + id + "/timeline.json", {credentials: "same-origin"}).then(function (x) { return x.json(); })
      .then(function (child) {
        var shift = (new Date(child.origin) - new Date(self.data.origin));
        self.expanded[id].rows = child.steps.map(function (s) {
          return Object.assign({}, s, {run: child.run, depth: r.depth + 1,
            t0: s.t0 === null ? null : s.t0 + shift, t1: s.t1 === null ? null : s.t1 + shift,
            a: s.a.map(function (a) { return [a[0] + shift, a[1] + shift, a[2], a[3]]; })});
        });
        self.load(self.data);
      });
  };
  Timeline.prototype.bind = function () {
    var self = this, cv = this.canvas, drag = null;
    cv.addEventListener("wheel", function (e) {
      if (e.ctrlKey || e.metaKey || e.altKey) {
        e.preventDefault(); self.zoom(e.deltaY > 0 ? 1.25 : 0.8, e.offsetX); return;
      }
      var before = self.scroll; self.scroll += e.deltaY; self.clampScroll();
      if (self.scroll !== before) { e.preventDefault(); self.draw(); }
    }, {passive: false});
    cv.addEventListener("mousedown", function (e) { drag = {x: e.clientX, y: e.clientY, v0: self.v0, v1: self.v1, s: self.scroll, moved: false}; cv.classList.add("dragging"); });
    window.addEventListener("mouseup", function () { cv.classList.remove("dragging"); setTimeout(function () { drag = null; }, 0); });
    window.addEventListener("mousemove", function (e) {
      if (!drag) return;
      var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      var per = (drag.v1 - drag.v0) / (self.w - LABEL - 8);
      self.v0 = drag.v0 - dx * per; self.v1 = drag.v1 - dx * per; self.fitted = false;
      self.scroll = drag.s - dy; self.clampScroll(); self.draw();
    });
    cv.addEventListener("mousemove", function (e) {
      var i = self.rowAt(e.offsetY);
      if (i !== self.hover) { self.hover = i; self.draw(); }
      if (i < 0) { self.tip.hidden = true; return; }
      var r = self.rows[i], failed = r.a.filter(function (a) { return a[2] === "failed"; }).length;
      self.tip.textContent = "#" + r.p + " " + r.n + " · " + r.s +
        (r.t0 !== null && r.t1 !== null ? " · " + fmtMs(r.t1 - r.t0) : "") +
        (r.tries > 1 ? " · " + r.tries + " attempts" + (failed ? " (" + failed + " failed)" : "") : "") +
        (r.cost ? " · $" + r.cost : "") + (r.err ? " · " + r.err : "");
      self.tip.hidden = false;
      self.tip.style.left = Math.min(e.offsetX + 12, self.w - self.tip.offsetWidth - 4) + "px";
      self.tip.style.top = (e.offsetY + 14) + "px";
    });
    cv.addEventListener("mouseleave", function () { self.tip.hidden = true; self.hover = -1; self.draw(); });
    cv.addEventListener("click", function (e) {
      if (drag && drag.moved) return;
      var i = self.rowAt(e.offsetY); if (i < 0) return;
      var r = self.rows[i];
      if (r.child && e.offsetX < LABEL) self.toggle(r); else self.open(r);
    });
    document.querySelectorAll("[data-tl]").forEach(function (b) {
      b.addEventListener("click", function () {
        var what = b.dataset.tl;
        if (what === "fit") self.fit();
        else if (what === "whole") self.whole();
        else self.zoom(what === "in" ? 0.5 : 2);
      });
    });
    // A live update swaps in a new data element (out of band): redraw from it, keeping
    // the zoom unless the view was fitted.
    document.body.addEventListener("htmx:afterSettle", function () {
      var now = document.getElementById("timeline-data");
      if (now && now !== self.source) {
        self.source = now;
        self.load(JSON.parse(now.textContent));
        self.box.dataset.updates = String(Number(self.box.dataset.updates || 0) + 1);
      }
    });
  };

  // -- analytics charts (uPlot) -----------------------------------------------------------
  var SERIES_COLORS = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#999999"];
  var STATUS_COLORS = {completed: "#009e73", failed: "#d55e00", cancelled: "#cc79a7", running: "#0072b2", pending: "#999999"};
  function charts() {
    var source = document.getElementById("analytics-data");
    if (!source || !window.uPlot) return;
    var data = JSON.parse(source.textContent);
    var muted = cssColor("--muted"), grid = cssColor("--border");
    var zeros = data.starts.map(function () { return 0; });
    var of = function (name) { return data.runs[name] || zeros; };
    // completed among finished runs per bucket (null where none finished)
    var success = data.starts.map(function (_, i) {
      var done = of("completed")[i] + of("failed")[i] + of("cancelled")[i];
      return done ? Math.round(1000 * of("completed")[i] / done) / 10 : null;
    });
    var defs = {
      runs: [data.runs, function (n) { return STATUS_COLORS[n]; }, "runs"],
      success: [data.total_runs ? {"success %": success} : {}, null, "%"],
      durations: [{"p50": data.p50_seconds, "p95": data.p95_seconds}, null, "s"],
      cost_by_model: [data.cost_by_model, null, "$"],
      cost_by_workflow: [data.cost_by_workflow, null, "$"],
      tokens_by_model: [data.tokens_by_model, null, "tokens"],
      tokens_by_workflow: [data.tokens_by_workflow, null, "tokens"]
    };
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var def = defs[el.dataset.chart], named = def[0];
      // a series with no value in the window (no completed run: no duration) draws nothing
      var names = Object.keys(named).filter(function (n) {
        return named[n].some(function (x) { return x !== null; });
      });
      el.innerHTML = "";
      var total = 0;
      names.forEach(function (n) { named[n].forEach(function (x) { total += x || 0; }); });
      el.dataset.total = String(Math.round(total * 1e6) / 1e6);
      el.dataset.series = names.join(",");
      if (!names.length) { el.innerHTML = '<p class="muted">Nothing recorded in this window.</p>'; return; }
      var series = [{}].concat(names.map(function (n, i) {
        return {label: n, stroke: (def[1] && def[1](n)) || SERIES_COLORS[i % SERIES_COLORS.length],
          width: 2, points: {show: data.starts.length < 80},
          spanGaps: el.dataset.chart === "durations" || el.dataset.chart === "success"};
      }));
      var axis = {stroke: muted, grid: {stroke: grid}, ticks: {stroke: grid}};
      var unit = def[2];
      var label = function (v) {
        if (v === null) return "";
        if (unit === "s") return fmtMs(v * 1000);
        var text = Math.abs(v) >= 1000 ? v.toLocaleString() : String(Number(v.toPrecision(3)));
        return unit === "$" ? "$" + text : text;
      };
      new uPlot({width: Math.max(el.clientWidth, 280), height: 220, series: series,
        axes: [axis, Object.assign({}, axis, {label: unit === "s" ? "" : unit, size: 70,
          values: function (u, splits) { return splits.map(label); }})],
        scales: {x: {time: true}}, legend: {show: true}},
        [data.starts].concat(names.map(function (n) { return named[n]; })), el);
    });
  }

  // -- wiring ---------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    var themeButton = document.getElementById("theme");
    if (themeButton) themeButton.addEventListener("click", toggleTheme);
    document.addEventListener("click", function (e) {
      var b = e.target.closest(".copy"); if (b) { copy(b); return; }
      if (e.target.id === "fork-open") document.getElementById("fork-dialog").showModal();
      if (e.target.id === "fork-close") document.getElementById("fork-dialog").close();
    });
    document.addEventListener("change", function (e) {
      if (e.target.classList && e.target.classList.contains("pick-run")) onPick(e.target);
    });
    document.addEventListener("keydown", function (e) {
      var typing = /INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName);
      if (e.key === "/" && !typing) { e.preventDefault(); document.getElementById("jump").focus(); }
    });
    var runs = document.querySelector("table.runs[data-rows-url]");
    if (runs) pollRuns(runs);
    var tl = document.getElementById("timeline"), src = document.getElementById("timeline-data");
    if (tl && src) window.flowledgerTimeline = new Timeline(tl, src);
    charts();
    window.addEventListener("flowledger:theme", charts);
    document.body.addEventListener("htmx:afterSettle", function (e) { localTimes(e.target); });
    document.body.dataset.ready = "1";
  });
})();
