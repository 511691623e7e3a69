/* Autobuild job page: live log over SSE (with chunked polling as the fallback), live status,
   build progress, elapsed time, artifact table refresh and the "Why it failed" box when the
   build ends. No framework, no build step. */
(function () {
  "use strict";

  var job = document.getElementById("job");
  if (!job) return;

  var jobId = job.dataset.jobId;
  var base = "/api/jobs/" + encodeURIComponent(jobId);
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrfToken = csrfMeta ? csrfMeta.content : "";
  var logEl = document.getElementById("log");
  var jumpButton = document.getElementById("log-jump");
  var logState = document.getElementById("log-state");

  var TERMINAL = { SUCCESS: true, FAILED: true, CANCELLED: true };
  var MAX_LOG_CHARS = 4000000;  // keep the page responsive on huge bitbake logs
  var KEEP_LOG_CHARS = 3000000;
  var MAX_SSE_FAILURES = 3;     // errors in a row without any message, then poll instead
  var POLL_STATUS_MS = 5000;    // while polling, how often the status and progress are refreshed

  var offset = 0;        // byte offset of the log received so far
  var ended = false;     // the whole log has arrived and the job is over
  var follow = true;     // auto-scroll while the reader is at the bottom
  var source = null;
  var sseFailures = 0;
  var polling = false;
  var state = {
    status: job.dataset.status,
    startedAt: job.dataset.startedAt || null,
    finishedAt: job.dataset.finishedAt || null
  };
  // The server's clock decides elapsed time; remember how far ours is off.
  var clockSkew = Date.parse(job.dataset.serverNow) - Date.now() || 0;

  // ---- formatting -----------------------------------------------------------------------

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function formatWhen(iso) {
    if (!iso) return "—";
    var d = new Date(iso);
    if (isNaN(d)) return "—";
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) +
      " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + " UTC";
  }

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) return "—";
    var total = Math.max(0, Math.floor(seconds));
    var h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
    if (h) return h + "h " + pad(m) + "m";
    if (m) return m + "m " + pad(s) + "s";
    return s + "s";
  }

  function formatSize(size) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var value = size, i = 0;
    while (value >= 1024 && i < units.length - 1) { value /= 1024; i++; }
    return i === 0 ? value + " B" : value.toFixed(1) + " " + units[i];
  }

  function setText(id, text) {
    var el = document.getElementById(id);
    if (el) el.textContent = text;
  }

  // ---- log view -------------------------------------------------------------------------

  function atBottom() {
    return logEl.scrollHeight - logEl.scrollTop - logEl.clientHeight < 8;
  }

  function scrollToEnd() {
    logEl.scrollTop = logEl.scrollHeight;
  }

  function appendLog(text) {
    if (!text) return;
    logEl.appendChild(document.createTextNode(text));
    if (logEl.textContent.length > MAX_LOG_CHARS) {
      var kept = logEl.textContent.slice(-KEEP_LOG_CHARS);
      logEl.textContent = "";
      var note = document.createElement("span");
      note.className = "log-note";
      note.textContent = "[earlier output trimmed in this view]\n";
      logEl.appendChild(note);
      logEl.appendChild(document.createTextNode(kept));
    }
    if (follow) scrollToEnd();
  }

  logEl.addEventListener("scroll", function () {
    follow = atBottom();  // scrolling up stops following; back at the bottom resumes it
    jumpButton.hidden = follow;
  });

  jumpButton.addEventListener("click", function () {
    follow = true;
    jumpButton.hidden = true;
    scrollToEnd();
  });

  // ---- status ---------------------------------------------------------------------------

  function updateElapsed() {
    if (!state.startedAt) { setText("elapsed", "—"); return; }
    var end = state.finishedAt ? Date.parse(state.finishedAt) : Date.now() + clockSkew;
    setText("elapsed", formatDuration((end - Date.parse(state.startedAt)) / 1000));
  }

  function applyStatus(s) {
    state.status = s.status;
    state.startedAt = s.started_at || null;
    state.finishedAt = s.finished_at || null;
    job.dataset.status = s.status;
    var badge = document.getElementById("job-status");
    if (badge) {
      badge.textContent = s.status;
      badge.className = "badge badge-" + s.status.toLowerCase();
    }
    setText("started-at", formatWhen(s.started_at));
    setText("finished-at", formatWhen(s.finished_at));
    setText("exit-code", s.exit_code === null || s.exit_code === undefined ? "—" : String(s.exit_code));
    if (s.reason) setText("status-line", s.reason);
    showProgressFor(s.status);
    if (s.progress) applyProgress(s.progress);
    if (TERMINAL[s.status]) {
      var cancelForm = document.getElementById("cancel-form");
      if (cancelForm) cancelForm.remove();
      document.title = "Build #" + jobId + " " + s.status + " · Autobuild";
    }
    updateElapsed();
  }

  setInterval(function () {
    if (!TERMINAL[state.status]) updateElapsed();
  }, 1000);

  // ---- progress -------------------------------------------------------------------------

  var progressBox = document.getElementById("progress");
  var progressBar = document.getElementById("progress-bar");

  function applyProgress(p) {
    if (!p || !progressBox || TERMINAL[state.status]) return;
    progressBox.hidden = false;
    setText("progress-label", state.status === "PENDING" ? "Waiting in the queue" : p.label);
    var known = p.percent !== null && p.percent !== undefined;
    setText("progress-percent", known ? p.percent + "%" : "");
    if (known) progressBar.value = p.percent;
    else progressBar.removeAttribute("value");  // no value: the indeterminate style
    setText("progress-current", p.current || "");
  }

  function showProgressFor(status) {
    if (!progressBox) return;
    if (TERMINAL[status]) {
      progressBox.hidden = true;
    } else if (status === "RUNNING" &&
               document.getElementById("progress-label").textContent === "Waiting in the queue") {
      setText("progress-label", "Starting");
    }
  }

  // ---- why it failed ------------------------------------------------------------------------

  function loadFailure() {
    var slot = document.getElementById("failure");
    if (!slot || slot.children.length) return;  // rendered with the page already
    fetch("/jobs/" + encodeURIComponent(jobId) + "/failure", { credentials: "same-origin" })
      .then(function (r) { return r.status === 200 ? r.text() : ""; })
      .then(function (html) { if (html) slot.innerHTML = html; })  // our own escaped template
      .catch(function () { /* a reload shows it */ });
  }

  // ---- artifacts ------------------------------------------------------------------------

  function renderArtifacts(items) {
    var table = document.getElementById("artifacts-table");
    var body = document.getElementById("artifacts-body");
    var empty = document.getElementById("artifacts-empty");
    body.textContent = "";
    items.forEach(function (a) {
      var row = document.createElement("tr");
      var nameCell = document.createElement("td");
      var link = document.createElement("a");
      link.href = base + "/artifacts/" + encodeURIComponent(a.name);
      link.setAttribute("download", "");
      link.textContent = a.name;
      nameCell.appendChild(link);
      var sizeCell = document.createElement("td");
      sizeCell.className = "num";
      sizeCell.title = a.size + " bytes";
      sizeCell.textContent = formatSize(a.size);
      var timeCell = document.createElement("td");
      timeCell.textContent = formatWhen(a.mtime);
      var sumCell = document.createElement("td");
      if (a.sha256) {
        var sum = document.createElement("code");
        sum.className = "sha256";
        sum.title = a.sha256;
        sum.dataset.sha256 = a.sha256;
        sum.textContent = a.sha256.slice(0, 12) + "\u2026";
        sumCell.appendChild(sum);
      } else {
        sumCell.textContent = "\u2013";
        sumCell.className = "muted";
      }
      var linkCell = document.createElement("td");
      var copy = document.createElement("button");
      copy.type = "button";
      copy.className = "button button-small copy-link";
      copy.dataset.href = base + "/artifacts/" + encodeURIComponent(a.name);
      copy.textContent = "Copy link";
      linkCell.appendChild(copy);
      row.appendChild(nameCell);
      row.appendChild(sizeCell);
      row.appendChild(timeCell);
      row.appendChild(sumCell);
      row.appendChild(linkCell);
      body.appendChild(row);
    });
    table.hidden = items.length === 0;
    empty.hidden = items.length !== 0;
    if (!items.length) empty.textContent = "This build produced no artifacts.";
  }

  // Copy buttons: the absolute download URL, or the full sha256 when its short form is clicked.
  function copyText(text, done) {
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, function () { window.prompt("Copy:", text); });
    } else {
      window.prompt("Copy:", text);  // no clipboard API (plain http): let the user copy it
    }
  }

  var artifactsBody = document.getElementById("artifacts-body");
  if (artifactsBody) {
    artifactsBody.addEventListener("click", function (event) {
      var target = event.target;
      if (target.classList.contains("copy-link")) {
        var url = new URL(target.dataset.href, window.location.href).href;
        copyText(url, function () {
          target.textContent = "Copied";
          window.setTimeout(function () { target.textContent = "Copy link"; }, 1500);
        });
      } else if (target.classList.contains("sha256")) {
        copyText(target.dataset.sha256, function () { target.classList.add("copied"); });
      }
    });
  }

  function refreshArtifacts() {
    fetch(base + "/artifacts", { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(renderArtifacts)
      .catch(function () { /* the table keeps what it showed; a reload fetches it again */ });
  }

  function finish(status) {
    if (ended) return;
    ended = true;
    logState.textContent = "Finished" + (status ? " (" + status + ")" : "");
    refreshArtifacts();
    if (status === "FAILED") loadFailure();
  }

  // ---- live log: SSE first, polling as the fallback ----------------------------------------

  function connect() {
    logState.textContent = TERMINAL[state.status] ? "Loading…" : "Live";
    // A new EventSource cannot send Last-Event-ID, so resume through ?offset=.
    source = new EventSource(base + "/log/stream?offset=" + offset);

    source.addEventListener("status", function (e) {
      sseFailures = 0;
      applyStatus(JSON.parse(e.data));
    });
    source.addEventListener("log", function (e) {
      sseFailures = 0;
      appendLog(JSON.parse(e.data).text);
      var next = parseInt(e.lastEventId, 10);
      if (!isNaN(next)) offset = next;
    });
    source.addEventListener("progress", function (e) {
      sseFailures = 0;
      applyProgress(JSON.parse(e.data));
    });
    source.addEventListener("end", function (e) {
      source.close();
      finish(JSON.parse(e.data).status);
    });
    source.onerror = function () {
      source.close();
      if (ended) return;
      sseFailures++;
      if (sseFailures >= MAX_SSE_FAILURES) {
        startPolling();
        return;
      }
      logState.textContent = "Reconnecting…";
      setTimeout(connect, 1000 * sseFailures);
    };
  }

  function startPolling() {
    if (polling || ended) return;
    polling = true;
    logState.textContent = "Live (polling)";
    poll();
  }

  var lastStatusRefresh = 0;

  function refreshStatus() {
    lastStatusRefresh = Date.now();
    return fetch(base, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(applyStatus);
  }

  function poll() {
    fetch(base + "/log?offset=" + offset, { credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 401) {
          logState.textContent = "Signed out: reload the page to sign in again";
          throw new Error("signed out");
        }
        if (!r.ok) throw new Error(r.status);
        return r.json();
      })
      .then(function (chunk) {
        appendLog(chunk.text);
        var progressed = chunk.next_offset > offset;
        offset = chunk.next_offset;
        // The status (with the progress) when it changed, at the end, and now and then.
        var refresh = chunk.status !== state.status || chunk.complete ||
          (progressed && Date.now() - lastStatusRefresh > POLL_STATUS_MS);
        var done = function () {
          if (chunk.complete) finish(chunk.status);
          else setTimeout(poll, progressed ? 0 : 1000);
        };
        if (refresh) refreshStatus().then(done, done);
        else done();
      })
      .catch(function (err) {
        if (err && err.message === "signed out") return;
        setTimeout(poll, 3000);
      });
  }

  if (window.EventSource) connect();
  else startPolling();

  // ---- cancel without leaving the page (the form still works without JavaScript) -----------

  var cancelForm = document.getElementById("cancel-form");
  if (cancelForm && window.fetch) {
    cancelForm.addEventListener("submit", function (e) {
      e.preventDefault();
      var button = cancelForm.querySelector("button");
      button.disabled = true;
      fetch(base + "/cancel", {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrfToken }
      })
        .then(function (r) {
          return r.json().then(function (body) { return { ok: r.ok, body: body }; });
        })
        .then(function (res) {
          if (!res.ok) {
            setText("status-line", res.body.detail || "The build could not be cancelled.");
            button.disabled = false;
            return;
          }
          if (res.body.status === "RUNNING") {
            setText("status-line", "Cancelling…");
          }
          applyStatus(res.body);
        })
        .catch(function () { cancelForm.submit(); });
    });
  }
})();
