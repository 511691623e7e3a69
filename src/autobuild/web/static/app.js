/* Autobuild job page: live log over SSE (with chunked polling as the fallback), live status,
   build progress, elapsed time, artifact table refresh and the "Why it failed" box when the
   build ends. The log view opens on the end of the log and holds a bounded number of lines,
   earlier parts on request, so a log of hundreds of MB never weighs on the page.
   No framework, no build step. */
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
  var earlierBar = document.getElementById("log-earlier");
  var earlierButton = document.getElementById("log-earlier-button");
  var earlierError = document.getElementById("log-earlier-error");

  var TERMINAL = { SUCCESS: true, FAILED: true, CANCELLED: true };
  var TAIL_BYTES = 256 * 1024;     // the view opens on this much of the end of the log
  var EARLIER_BYTES = 256 * 1024;  // what "Load earlier" adds
  var MAX_CHUNK_BYTES = 1024 * 1024;  // the most the chunk endpoint gives at once
  var MAX_LOG_LINES = 5000;        // lines the view keeps while it follows the end
  var MAX_READING_LINES = 20000;   // ... and while the reader is scrolled back or loaded earlier
  var MAX_PENDING_CHARS = 1000000; // appended at once past this (no frames in a hidden tab)
  var MAX_SSE_FAILURES = 3;     // errors in a row without any message, then poll instead
  var POLL_STATUS_MS = 5000;    // while polling, how often the status and progress are refreshed

  var logSize = parseInt(job.dataset.logSize, 10) || 0;  // when the page was rendered
  var offset = Math.max(0, logSize - TAIL_BYTES);  // byte offset of the log received so far
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

  // What the view shows starts with `head.text`, which ends at byte `head.offset` of the log,
  // and goes on with the log from there. Byte offsets are only ever counted from text without
  // U+FFFD (it stands for 1 to 3 bytes); where there is one, its text is kept instead.
  var head = { offset: offset, text: "" };
  var fromStart = offset === 0;  // the view starts at byte 0: nothing earlier to load
  var cutting = offset > 0;      // the first line received started before the view: drop it
  // One per text node, oldest first: {node, lines, start, end}, exact byte offsets or null.
  var segments = [];
  var lineCount = 0;
  var pendingText = "";
  var pendingStart = null;
  var pendingEnd = 0;
  var frameAsked = false;
  var loadingEarlier = false;

  function utf8Length(text) {
    var bytes = 0;
    for (var i = 0; i < text.length; i++) {
      var c = text.charCodeAt(i);
      if (c < 0x80) bytes += 1;
      else if (c < 0x800) bytes += 2;
      else if (c >= 0xD800 && c < 0xDC00 && i + 1 < text.length) { bytes += 4; i++; }
      else bytes += 3;
    }
    return bytes;
  }

  function countLines(text) {
    var n = 0;
    for (var at = text.indexOf("\n"); at >= 0; at = text.indexOf("\n", at + 1)) n++;
    return n;
  }

  // Where the first whole line of `text`, read from byte `from`, starts; null if unknown. A
  // read from inside a character starts with one U+FFFD per byte of it that was cut off.
  function firstLineStart(text, from) {
    var line = text.indexOf("\n");
    if (line < 0) return null;
    var cut = text.slice(0, line + 1);
    var stray = /^\uFFFD{0,3}/.exec(cut)[0].length;
    cut = cut.slice(stray);
    return cut.indexOf("\uFFFD") < 0 ? from + stray + utf8Length(cut) : null;
  }

  // The head of a view that starts (at a line start) with `text`, which ends at byte `end`.
  function headOf(text, end) {
    var bad = text.lastIndexOf("\uFFFD");
    if (bad < 0) return { offset: end - utf8Length(text), text: "" };
    var line = text.indexOf("\n", bad);
    if (line < 0) return { offset: end, text: text };
    return { offset: end - utf8Length(text.slice(line + 1)), text: text.slice(0, line + 1) };
  }

  // Log text from byte `start` to `end`, from the stream or the polling: shown at the next frame.
  function receiveLog(text, start, end) {
    if (cutting) {
      var line = text.indexOf("\n");
      if (line < 0) {
        head = { offset: end, text: "" };
        return;
      }
      var anchor = firstLineStart(text, start);
      text = text.slice(line + 1);  // also drops what a character cut at the start decoded to
      cutting = false;
      head = anchor === null ? headOf(text, end) : { offset: anchor, text: "" };
      start = head.text ? null : head.offset;
    }
    if (text) {
      if (!pendingText) pendingStart = start;
      pendingText += text;
    }
    pendingEnd = end;
    if (pendingText.length > MAX_PENDING_CHARS) {
      flushLog();
    } else if (pendingText && !frameAsked) {
      frameAsked = true;
      (window.requestAnimationFrame || setTimeout)(flushLog);
    }
  }

  function flushLog() {
    frameAsked = false;
    if (pendingText) {
      var node = document.createTextNode(pendingText);
      var lines = countLines(pendingText);
      pendingText = "";
      logEl.appendChild(node);
      segments.push({ node: node, lines: lines, start: pendingStart, end: pendingEnd });
      lineCount += lines;
      var limit = follow ? MAX_LOG_LINES : MAX_READING_LINES;
      if (lineCount > limit) {
        var top = logEl.scrollTop, before = follow ? 0 : logEl.scrollHeight;
        dropOldestLines(lineCount - limit);
        if (!follow) logEl.scrollTop = top - (before - logEl.scrollHeight);  // the reader's lines stay put
      }
      if (follow) scrollToEnd();
    }
    showRange();
  }

  // Removes the first `count` lines from the view and moves its head past them.
  function dropOldestLines(count) {
    var cut = "";
    while (count > 0 && segments.length) {
      var first = segments[0];
      var text = first.node.data;
      if (first.lines < count || (first.lines === count && text.charAt(text.length - 1) === "\n")) {
        logEl.removeChild(first.node);
        segments.shift();
        lineCount -= first.lines;
        count -= first.lines;
        continue;
      }
      var at = -1;
      for (var i = 0; i < count; i++) at = text.indexOf("\n", at + 1);
      cut = text.slice(0, at + 1);
      first.node.deleteData(0, at + 1);
      first.lines -= count;
      lineCount -= count;
      count = 0;
    }
    fromStart = false;
    if (!segments.length) {
      head = { offset: pendingEnd, text: "" };
      return;
    }
    var seg = segments[0];
    var rest = seg.node.data;
    if (seg.start !== null && cut.indexOf("\uFFFD") < 0) {
      seg.start += utf8Length(cut);
    } else if (seg.end !== null && rest.indexOf("\uFFFD") < 0) {
      seg.start = seg.end - utf8Length(rest);
    } else {
      seg.start = null;
    }
    if (seg.start !== null) {
      head = { offset: seg.start, text: "" };
      return;
    }
    var parts = [];
    for (var k = 0; k < segments.length; k++) {
      parts.push(segments[k].node.data);
      if (segments[k].end !== null) {
        head = headOf(parts.join(""), segments[k].end);
        return;
      }
    }
  }

  function showRange() {
    if (!earlierBar) return;
    earlierBar.hidden = fromStart || cutting;
    if (earlierBar.hidden) return;
    var total = Math.max(logSize, offset);
    var shown = Math.min(total, total - head.offset + utf8Length(head.text));
    document.getElementById("log-range").textContent =
      "Showing the last " + formatSize(shown) + " of " + formatSize(total);
  }

  function setLoadingEarlier(on) {
    loadingEarlier = on;
    earlierButton.disabled = on;
    earlierButton.textContent = on ? "Loading\u2026" : "Load earlier";
  }

  // The part of the log before the view, through the chunk endpoint, cut at a line start.
  function loadEarlier(retried) {
    if (loadingEarlier || fromStart || cutting) return;
    var asked = head;
    var wanted = EARLIER_BYTES + utf8Length(asked.text);
    if (lineCount >= MAX_READING_LINES || wanted > MAX_CHUNK_BYTES) {
      earlierError.textContent = "The view holds no more than this: the raw log has all of it.";
      return;
    }
    var from = Math.max(0, asked.offset - wanted);
    follow = false;  // stay with what the reader asked for, not with new output
    jumpButton.hidden = false;
    earlierError.textContent = "";
    setLoadingEarlier(true);
    fetch(base + "/log?offset=" + from + "&limit=" + Math.max(1, asked.offset - from),
          { credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 401) throw new Error("signed out: reload the page to sign in again");
        if (!r.ok) throw new Error("the server answered " + r.status);
        return r.json();
      })
      .then(function (chunk) {
        setLoadingEarlier(false);
        if (head !== asked) {  // the view moved on meanwhile: ask again from where it is now
          if (!retried) loadEarlier(true);
          return;
        }
        var text = chunk.text;
        var tail = text.length - asked.text.length;
        if (chunk.offset !== from || chunk.next_offset !== asked.offset || tail < 0 ||
            text.slice(tail) !== asked.text) {
          throw new Error("it does not line up with the view: reload the page");
        }
        prependLog(text.slice(0, tail), from, asked);
      })
      .catch(function (err) {
        setLoadingEarlier(false);
        earlierError.textContent = "Could not load the earlier log: " + err.message + ".";
      });
  }

  // `body` is the log from byte `from` up to where the view starts (`asked`, its head).
  function prependLog(body, from, asked) {
    var text = body;
    var next;
    var line = text.indexOf("\n");
    if (from === 0) {
      next = { offset: 0, text: "" };
    } else if (line >= 0 && line < text.length - 1) {
      var anchor = firstLineStart(text, from);
      text = text.slice(line + 1);  // from the first whole line; a cut character goes with it
      next = anchor === null ? headOf(text + asked.text, asked.offset) : { offset: anchor, text: "" };
    } else {
      // One line longer than the range: show it from a character start rather than nothing.
      text = text.replace(/^\uFFFD{1,3}/, "");
      next = { offset: from, text: "" };
    }
    if (text) {
      var node = document.createTextNode(text);
      var lines = countLines(text);
      var top = logEl.scrollTop, before = logEl.scrollHeight;
      var wasAtEnd = atBottom();
      logEl.insertBefore(node, logEl.firstChild);
      segments.unshift({ node: node, lines: lines, start: next.text ? null : next.offset,
                         end: asked.text ? null : asked.offset });
      lineCount += lines;
      var added = logEl.scrollHeight - before;
      // At the end, show the end of what was loaded; scrolled back, what the reader saw stays put.
      logEl.scrollTop = wasAtEnd ? Math.max(0, added - logEl.clientHeight) : top + added;
    }
    head = next;
    fromStart = from === 0;
    showRange();
  }

  if (earlierButton) {
    earlierButton.addEventListener("click", function () { loadEarlier(false); });
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
    var waiting = document.getElementById("waiting-reason");
    if (waiting) {  // why a queued build waits (our queue, or the cluster's: "Resources"...)
      waiting.textContent = s.waiting_reason || "";
      waiting.hidden = !s.waiting_reason;
    }
    var nodeRow = document.getElementById("job-node-row");
    if (nodeRow && s.node) {  // the cluster node it runs on
      setText("job-node", s.node);
      nodeRow.hidden = false;
    }
    dropOutdatedMessages(s.status);
    showProgressFor(s.status);
    if (s.progress) applyProgress(s.progress);
    if (TERMINAL[s.status]) {
      var cancelForm = document.getElementById("cancel-form");
      if (cancelForm) cancelForm.remove();
      document.title = "Build #" + jobId + " " + s.status + " · Autobuild";
    }
    updateElapsed();
  }

  // A one-shot message about this job ("Build #3 is queued.") goes once the job has left the
  // states it describes (data-while-status, see Flash in web/security.py).
  function dropOutdatedMessages(status) {
    var messages = document.querySelectorAll(".flash[data-job-id]");
    for (var i = 0; i < messages.length; i++) {
      var el = messages[i];
      if (el.dataset.jobId === jobId &&
          (el.dataset.whileStatus || "").split(" ").indexOf(status) < 0) {
        el.remove();
      }
    }
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

  function renderArtifacts(items, more) {
    var note = document.getElementById("artifacts-more");
    if (note) {
      note.hidden = !more;
      document.getElementById("artifacts-listed").textContent = String(items.length);
      document.getElementById("artifacts-more-count").textContent = String(more || 0);
      document.getElementById("artifacts-more-words").textContent =
        more === 1 ? "more file is" : "more files are";
    }
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
      copy.setAttribute("aria-label", "Copy the link to " + a.name);
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
      .then(function (r) {
        if (!r.ok) throw new Error(r.status);
        var more = parseInt(r.headers.get("X-Artifacts-Not-Listed") || "0", 10) || 0;
        return r.json().then(function (items) { renderArtifacts(items, more); });
      })
      .catch(function () { /* the table keeps what it showed; a reload fetches it again */ });
  }

  function finish(status) {
    if (ended) return;
    ended = true;
    flushLog();
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
      var text = JSON.parse(e.data).text;
      var next = parseInt(e.lastEventId, 10);
      var start = offset;
      offset = isNaN(next) ? offset + utf8Length(text) : next;
      receiveLog(text, start, offset);
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
        var progressed = chunk.next_offset > offset;
        offset = chunk.next_offset;
        receiveLog(chunk.text, chunk.offset, offset);
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
