// mlward dashboard: live updates. When the server says a new result was ingested
// (server-sent events, /api/v1/events), fetch this page again and swap its <main>, so the
// page updates without a reload. The fetched HTML is the server's own, autoescaped page;
// nodes made by DOMParser never run scripts, and the CSP allows none inline anyway.
// Written for this project (Apache-2.0, like mlward); no third-party code.
(function () {
  "use strict";
  if (!window.EventSource) { return; }
  var badge = document.getElementById("live");
  var source = new EventSource("/api/v1/events");
  var refreshing = false;
  function refresh() {
    if (refreshing) { return; }
    refreshing = true;
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
        var main = document.getElementById("main");
        if (fresh && main) { main.replaceWith(fresh); }
        document.body.dataset.version = String(Date.now());
      })
      .catch(function () { /* the next event tries again */ })
      .then(function () { refreshing = false; });
  }
  source.addEventListener("hello", function () {
    if (badge) { badge.classList.add("on"); }
  });
  source.addEventListener("ingest", refresh);
  source.onerror = function () { if (badge) { badge.classList.remove("on"); } };
}());
