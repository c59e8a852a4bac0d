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
 * The page also pings the moment it regains focus (window focus, the tab
 * made visible again while focused, or focus come back straight into the
 * app's iframe, which the parent sees only as document.hasFocus() turning
 * true: checked each second while live), at most once a second: a viewer
 * back from another tab keeps the app before the next tick is due.
 *
 * When the page is hidden for good or for the back/forward cache (pagehide),
 * it says goodbye: a beacon naming the deployment it shows (the CSRF token in
 * the form body: a beacon carries no headers), so the server can stop an app
 * whose last page has closed within a minute. A page restored from that
 * cache (pageshow, persisted) says hello again: it asks the start endpoint,
 * which counts a page load, and shows the answer if the deployment changed.
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
  var goodbyeUrl = root.getAttribute("data-goodbye-url");
  var startUrl = root.getAttribute("data-start-url");
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
  var lastPingAt = 0;  /* Date.now() of the latest ping sent */
  var hadFocus = document.hasFocus();
  var focusWatch = null;
  var saidGoodbye = "";  /* the deployment this page said goodbye to, until it says hello */
  var FOCUS_PING_GAP = 1000;  /* ms: at most one focus ping a second */

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
    lastPingAt = Date.now();
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

  /* Focus regained: ping now unless one went out within the last second. */
  function focusPing() {
    if (timer === null || Date.now() - lastPingAt < FOCUS_PING_GAP) { return; }
    ping();
  }

  function regained() {
    hadFocus = document.hasFocus();
    if (document.visibilityState !== "visible" || !hadFocus) { return; }
    focusPing();
    maybeWake();
  }

  /* Focus that comes back straight into the iframe fires no event here. */
  function watchFocus() {
    var now = document.hasFocus();
    if (now && !hadFocus) { regained(); }
    hadFocus = now;
  }

  function goodbye() {
    var el = statusElement();
    if (!goodbyeUrl || !navigator.sendBeacon || !isLive(el)) { return; }
    var deployment = el.getAttribute("data-deployment") || "";
    if (!deployment || saidGoodbye === deployment) { return; }
    var body = new URLSearchParams({ deployment: deployment, csrf_token: csrf });
    if (navigator.sendBeacon(goodbyeUrl, body)) { saidGoodbye = deployment; }
  }

  /* Back from the back/forward cache: count this page again (a load), and
   * show the app's deployment if it is not the one this page showed. */
  function hello(event) {
    if (!event.persisted || !saidGoodbye) { return; }
    var shown = saidGoodbye;
    saidGoodbye = "";
    fetch(startUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, "Accept": "application/json" }
    }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (data) {
      var now = (data && data.public_name) || shown;
      if (!data || now !== shown || data.status !== "running") { showStopped(now); }
    }).catch(function () { showStopped(shown); });
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

  function startTimer() {
    if (timer === null) { timer = window.setInterval(ping, interval); }
    if (focusWatch === null) { focusWatch = window.setInterval(watchFocus, 1000); }
  }
  function stopTimer() {
    if (timer !== null) { window.clearInterval(timer); timer = null; }
    if (focusWatch !== null) { window.clearInterval(focusWatch); focusWatch = null; }
  }
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
  window.addEventListener("focus", regained);
  document.addEventListener("visibilitychange", regained);
  window.addEventListener("pagehide", goodbye);
  window.addEventListener("pageshow", hello);
  window.dormouseViz = {
    ping: ping,
    lastPingAt: function () { return lastPingAt; },
    isPinging: function () { return timer !== null; },
    wokenByItself: function () { return Object.keys(woken).length; }
  };
  sync();
}());
