// Live updates for the status page: re-fetch the server-rendered panel every few seconds and swap it in.
// Hand-written, no framework, served by the API itself (no CDN).
(function () {
  "use strict";
  var panel = document.getElementById("panel");
  var updated = document.getElementById("updated");
  if (!panel || !updated) { return; }
  var every = Math.max(2, parseInt(updated.getAttribute("data-poll"), 10) || 5) * 1000;
  var last = panel.innerHTML;

  function paintWeights(root) {
    var fills = root.querySelectorAll(".fill[data-weight]");
    for (var i = 0; i < fills.length; i++) {
      fills[i].style.width = Math.max(0, Math.min(100, Number(fills[i].getAttribute("data-weight")))) + "%";
    }
  }

  function refresh() {
    fetch("/status/panel", { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.text();
      })
      .then(function (html) {
        if (html !== last) { panel.innerHTML = html; last = html; paintWeights(panel); }
        updated.textContent = new Date().toISOString().replace("T", " ").slice(0, 19) + "Z";
        updated.classList.remove("stale");
      })
      .catch(function () { updated.classList.add("stale"); })
      .then(function () { window.setTimeout(refresh, every); });
  }

  paintWeights(document);
  window.setTimeout(refresh, every);
})();
