/* The viz page: ping while the page has focus; stop when the app is gone.
 *
 * One interval timer, running only while the status partial shows a live
 * deployment (starting or running). Each tick pings only if the document has
 * focus (which includes focus inside the app's iframe) and no ping is in
 * flight, so a hidden tab or a sleeping laptop keeps nothing alive and a slow
 * server never sees a storm. When a ping answers that the deployment is
 * stopped or failed, the timer stops and the status partial is swapped in,
 * which says so plainly and offers a restart button: no reload, no loop.
 *
 * An app that went to sleep for want of viewers (the partial's data-wakes)
 * is woken in place by the page itself, once per deployment, when the page
 * is visible and focused: the wake button is clicked, and the start answer
 * (starting, then the iframe) is swapped in. A start that fails or is
 * refused shows why and is not tried again by itself.
 *
 * While starting, the elapsed seconds tick between polls from the server's
 * count (data-elapsed: from the deployment's start, so a reload is right
 * too), and "taking longer than usual" shows past data-slow-after.
 */
(function () {
  "use strict";
  var root = document.getElementById("viz");
  if (!root) { return; }
  var pingUrl = root.getAttribute("data-ping-url");
  var statusUrl = root.getAttribute("data-status-url");
  var seconds = parseFloat(root.getAttribute("data-ping-interval") || "10");
  var interval = Math.max(1, isFinite(seconds) ? seconds : 10) * 1000;
  var tokenMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = tokenMeta ? tokenMeta.getAttribute("content") : "";
  var timer = null;
  var inFlight = false;
  var woken = {};  /* deployments this page has woken by itself */
  var ticker = null;
  var settledAt = 0;

  function statusElement() { return document.getElementById("viz-status"); }

  function isLive(el) {
    var s = el && el.getAttribute("data-status");
    return s === "starting" || s === "running";
  }

  function showStopped(deployment) {
    stopTimer();
    var url = statusUrl + "?deployment=" + encodeURIComponent(deployment || "");
    window.htmx.ajax("GET", url, { target: "#viz-status", swap: "outerHTML" });
  }

  function ping() {
    var el = statusElement();
    if (!isLive(el)) { stopTimer(); return; }
    if (inFlight || !document.hasFocus()) { return; }
    var deployment = el.getAttribute("data-deployment") || "";
    inFlight = true;
    fetch(pingUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, "Accept": "application/json" },
      body: new URLSearchParams({ deployment: deployment })
    }).then(function (response) {
      if (response.status >= 400 && response.status < 500) {
        /* Session expired or app removed: pinging again will not help. */
        stopTimer();
        notice("This page lost its session with the server. Reload it to keep the app running.");
        return null;
      }
      return response.ok ? response.json() : null;
    }).then(function (data) {
      if (data && data.status !== "starting" && data.status !== "running") {
        showStopped(deployment);
      }
    }).catch(function () {
      /* The server is unreachable for now; the next tick tries again. */
    }).then(function () { inFlight = false; });
  }

  function notice(text) {
    var el = document.getElementById("viz-notice");
    if (el) { el.textContent = text; el.hidden = false; }
  }

  function maybeWake() {
    var el = statusElement();
    if (!el || el.getAttribute("data-status") !== "stopped" || el.getAttribute("data-wakes") !== "1") { return; }
    if (document.visibilityState !== "visible" || !document.hasFocus()) { return; }
    var deployment = el.getAttribute("data-deployment") || "";
    if (woken[deployment]) { return; }
    var button = document.getElementById("viz-wake");
    if (!button) { return; }
    woken[deployment] = true;
    button.click();
  }

  function tick() {
    var line = document.getElementById("viz-elapsed");
    if (!line) { window.clearInterval(ticker); ticker = null; return; }
    var elapsed = parseFloat(line.getAttribute("data-elapsed") || "0") + (Date.now() - settledAt) / 1000;
    var shown = line.querySelector(".elapsed");
    if (shown) { shown.textContent = String(Math.floor(elapsed)); }
    var slowAfter = parseFloat(line.getAttribute("data-slow-after") || "");
    var slow = document.getElementById("viz-slow");
    if (slow && isFinite(slowAfter)) { slow.hidden = elapsed <= slowAfter; }
  }

  function startTicking() {
    settledAt = Date.now();
    if (ticker === null && document.getElementById("viz-elapsed")) { ticker = window.setInterval(tick, 1000); }
  }

  function startTimer() { if (timer === null) { timer = window.setInterval(ping, interval); } }
  function stopTimer() { if (timer !== null) { window.clearInterval(timer); timer = null; } }
  function sync() { if (isLive(statusElement())) { startTimer(); } else { stopTimer(); } }

  /* The first start request could not reach the server: say so, try again. */
  document.body.addEventListener("htmx:sendError", function () {
    var el = statusElement();
    if (!el || el.getAttribute("data-status") !== "connecting") { return; }
    var note = document.getElementById("viz-connecting");
    if (note) { note.textContent = "Cannot reach the server; trying again…"; }
    window.setTimeout(function () { window.htmx.trigger(el, "retry"); }, 3000);
  });

  function settled() { sync(); startTicking(); maybeWake(); }

  document.body.addEventListener("htmx:afterSettle", settled);
  window.addEventListener("focus", maybeWake);
  document.addEventListener("visibilitychange", maybeWake);
  window.dormouseViz = {
    ping: ping,
    isPinging: function () { return timer !== null; },
    wokenByItself: function () { return Object.keys(woken).length; }
  };
  sync();
}());
