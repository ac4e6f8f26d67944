// Orca dashboard: live updates from GET /events and a task's output followed live.
// One EventSource per tab, opened from the index the page was rendered at, closed when the
// page is hidden or left (pagehide), reopened from the last index seen when it is shown again.
(function () {
  "use strict";
  var body = document.body;
  var since = body.dataset.since;
  var topics = body.dataset.topics;
  var source = null;
  var live = document.getElementById("live");
  var follow = null;

  function setLive(text, on) {
    if (!live) { return; }
    live.textContent = text;
    live.classList.toggle("on", !!on);
  }

  function open() {
    if (source || since === "" || !topics || document.visibilityState === "hidden") { return; }
    source = new EventSource("/events?since=" + encodeURIComponent(since) + "&topic=" + encodeURIComponent(topics));
    source.onopen = function () { setLive("live", true); };
    source.onerror = function () { setLive("reconnecting", false); };
    topics.split(",").forEach(function (topic) {
      source.addEventListener(topic, function (message) {
        var event = JSON.parse(message.data);
        since = String(event.index);
        handle(event);
      });
    });
    source.addEventListener("gone", function () { close(); location.reload(); });
  }

  function close() {
    if (source) { source.close(); source = null; }
    setLive("paused", false);
  }

  function handle(event) {
    if (event.topic === "task") { onTask(event); }
    if (event.topic === "node") { onNode(event); }
    var page = topics.split(",")[0];
    if ((page === "service" || page === "node") && /^(service|node)(,task)?$/.test(topics) &&
        (event.topic === page || (page === "service" && event.topic === "task" && event.data.service))) { refresh(); }
    addEvent(event);
  }

  // The services pages and the nodes page re-read what they show as a whole when their topic
  // changes (the same page, fetched and swapped in; the stream stays open), at most twice a
  // second. Their rows are idempotent, so an event applied again after a swap changes nothing;
  // the overview, whose counts move by event, is not swapped.
  var refreshing = null;
  function refresh() {
    if (refreshing) { return; }
    refreshing = setTimeout(function () {
      fetch(location.href, { credentials: "same-origin" }).then(function (response) {
        return response.ok ? response.text() : null;
      }).then(function (html) {
        if (html === null) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("main");
        var main = document.querySelector("main");
        if (fresh && main) {
          main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes));
          bindConfirmations(main);
        }
      }).catch(function () {}).then(function () { refreshing = null; });
    }, 500);
  }

  function stateBadge(value) {
    var span = document.createElement("span");
    span.className = "state state-" + value;
    span.dataset.field = "state";
    span.textContent = value;
    return span;
  }

  function onTask(event) {
    var task = event.data;
    document.querySelectorAll('[data-task-id="' + CSS.escape(task.id) + '"]').forEach(function (holder) {
      holder.querySelectorAll("[data-field]").forEach(function (field) {
        var name = field.dataset.field;
        if (name === "state") { field.replaceWith(stateBadge(task.state)); return; }
        if (name in task) { field.textContent = task[name] === null ? (name === "node" ? "" : "") : String(task[name]); }
      });
    });
    if (task.desired_state === "stopped" || ["completed", "failed"].indexOf(task.state) >= 0) {
      var stop = document.getElementById("stop");
      if (stop && stop.closest('[data-task-id="' + CSS.escape(task.id) + '"]')) { stop.disabled = true; }
    }
    if (event.kind === "created") { addRow(task); }
    if (event.kind === "state") { addHistory(event); }
    if (event.kind === "created" || event.kind === "state" || event.kind === "removed") { count(task, event.kind); }
    if (event.kind === "removed") {  // purged (or its submission undone): its row goes
      document.querySelectorAll('tr[data-task-id="' + CSS.escape(task.id) + '"]').forEach(function (row) { row.remove(); });
    }
  }

  function count(task, kind) {
    var add = function (name, delta) {
      var cell = document.querySelector('[data-count="' + name + '"]');
      if (cell) { cell.textContent = String(Math.max(0, parseInt(cell.textContent, 10) + delta)); }
    };
    if (kind === "created") { add("total", 1); add(task.state, 1); return; }
    if (kind === "removed") { add("total", -1); add(task.state, -1); return; }
    if (task.previous && task.previous !== task.state) { add(task.previous, -1); add(task.state, 1); }
  }

  function addRow(task) {
    var list = document.getElementById("task-list");
    var table = list ? list.querySelector("tbody") : null;
    if (!table || list.dataset.lastPage !== "yes") { return; }
    if (list.dataset.filterState && list.dataset.filterState !== task.state) { return; }
    if (list.dataset.filterNode && list.dataset.filterNode !== (task.node || "")) { return; }
    if (document.querySelector('tr[data-task-id="' + CSS.escape(task.id) + '"]')) { return; }
    var row = document.createElement("tr");
    row.dataset.taskId = task.id;
    row.className = "fresh";
    var link = document.createElement("a");
    link.href = "/ui/tasks/" + encodeURIComponent(task.id);
    var code = document.createElement("code");
    code.textContent = task.id.slice(0, 8);
    link.appendChild(code);
    var cells = [link, task.name, stateBadge(task.state), String(task.attempt), task.node || "", task.image];
    var fields = [null, null, null, "attempt", "node", null];
    cells.forEach(function (content, n) {
      var cell = document.createElement("td");
      if (typeof content === "string") { cell.textContent = content; } else { cell.appendChild(content); }
      if (fields[n]) { cell.dataset.field = fields[n]; }
      if (n === 5) { cell.className = "wide"; }
      row.appendChild(cell);
    });
    table.appendChild(row);
  }

  function addHistory(event) {
    var list = document.getElementById("history");
    if (!list || list.dataset.task !== event.data.id) { return; }
    var item = document.createElement("li");
    var code = document.createElement("code");
    code.textContent = "#" + event.index;
    item.appendChild(code);
    item.appendChild(document.createTextNode(" " + event.time + " attempt " + event.data.attempt + " "));
    item.appendChild(stateBadge(event.data.state));
    item.appendChild(document.createTextNode(" " + (event.data.node || "")));
    list.appendChild(item);
  }

  function onNode(event) {
    var node = event.data;
    document.querySelectorAll('[data-node="' + CSS.escape(node.name) + '"] [data-field="state"]').forEach(function (field) {
      field.replaceWith(stateBadge(node.status));
    });
    var up = document.querySelector("[data-nodes-up]");
    if (up && (event.kind === "up" || event.kind === "down")) {
      up.textContent = String(Math.max(0, parseInt(up.textContent, 10) + (event.kind === "up" ? 1 : -1)));
    }
  }

  function addEvent(event) {
    var list = document.getElementById("events");
    if (!list) { return; }
    var item = document.createElement("li");
    var code = document.createElement("code");
    code.textContent = "#" + event.index;
    item.appendChild(code);
    var what = event.data.id ? event.data.id.slice(0, 8) : (event.data.name || event.data.service || "");
    item.appendChild(document.createTextNode(" " + event.topic + " " + event.kind + " "));
    var muted = document.createElement("span");
    muted.className = "muted";
    muted.textContent = what;
    item.appendChild(muted);
    if (event.topic === "task") { item.appendChild(document.createTextNode(" ")); item.appendChild(stateBadge(event.data.state)); }
    list.insertBefore(item, list.firstChild);
    while (list.children.length > 15) { list.removeChild(list.lastChild); }
  }

  // ----- a task's output: fetched, then followed while the task runs (one request, aborted on pagehide)

  function followOutput() {
    var pre = document.getElementById("output");
    if (!pre || follow) { return; }
    follow = new AbortController();
    var url = pre.dataset.logs + (pre.dataset.follow === "yes" ? "?follow=true" : "");
    var decoder = new TextDecoder();
    pre.textContent = "";
    fetch(url, { signal: follow.signal, credentials: "same-origin" }).then(function (response) {
      if (!response.ok) { pre.textContent = "(output unavailable: HTTP " + response.status + ")"; return null; }
      var reader = response.body.getReader();
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) { return null; }
          var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          pre.textContent += decoder.decode(chunk.value, { stream: true });
          if (atEnd) { pre.scrollTop = pre.scrollHeight; }
          return pump();
        });
      }
      return pump();
    }).catch(function (error) {
      if (error.name !== "AbortError") { pre.dataset.error = String(error); }
    }).then(function () { follow = null; });
  }

  function stopOutput() {
    if (follow) { follow.abort(); follow = null; }
  }

  // ----- confirmations of the actions

  function bindConfirmations(root) {
    root.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (submit) {
        if (!window.confirm(form.dataset.confirm)) { submit.preventDefault(); }
      });
    });
  }
  bindConfirmations(document);

  window.addEventListener("pagehide", function () { close(); stopOutput(); });
  window.addEventListener("pageshow", function (shown) {
    open();
    if (shown.persisted) { followOutput(); }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") { close(); } else { open(); }
  });
  open();
  followOutput();
})();
