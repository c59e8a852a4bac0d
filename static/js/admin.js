/* The admin dashboard: its live partial (#admin-live, hx-trigger "every 5s")
 * is asked for only while the tab is visible and nobody is editing a form in
 * it (a refresh would replace the field being typed in). A skipped tick sends
 * nothing; the next tick asks again. Coming back to the tab refreshes at once.
 * No eval, no inline code: the CSP allows neither.
 */
(function () {
  "use strict";

  function editing(live) {
    var active = document.activeElement;
    return !!(active && live.contains(active) && active.form);
  }

  document.body.addEventListener("htmx:beforeRequest", function (event) {
    var live = event.detail && event.detail.elt;
    if (!live || live.id !== "admin-live") { return; }
    if (document.hidden || editing(live)) { event.preventDefault(); }
  });

  document.addEventListener("visibilitychange", function () {
    var live = document.getElementById("admin-live");
    if (!document.hidden && live && !editing(live)) { window.htmx.trigger(live, "refresh"); }
  });
})();
