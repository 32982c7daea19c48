// Live progress of the wiki page's open operation: poll its JSON (the API's operation
// endpoint), mark each step as the worker records it, and when the operation ends fetch the
// page again and swap its content, so state and actions show the truth without a reload.
// Without JavaScript the page refreshes itself (a <noscript> meta refresh) instead.
(function () {
  "use strict";
  var POLL_MS = 1000;
  var OPEN_STATES = ["pending", "running"];

  function renderOperation(section, operation) {
    var progress = section.querySelector("progress");
    if (progress) {
      progress.value = operation.progress;
      progress.textContent = Math.round(operation.progress * 100) + "%";
    }
    var state = section.querySelector("[data-operation-state]");
    if (state) state.textContent = operation.state;
    operation.steps.forEach(function (step) {
      var item = section.querySelector('[data-step="' + step.name + '"]');
      if (!item) return;
      item.className = "step step-" + step.status;
      item.querySelector(".step-status").textContent = step.status;
    });
  }

  function refreshContent() {
    return fetch(window.location.href, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("main");
        if (fresh) {
          document.querySelector("main").replaceWith(fresh);
          start();
        }
      });
  }

  function poll(section) {
    fetch(section.dataset.operationUrl, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (operation) {
        if (operation) renderOperation(section, operation);
        if (operation && OPEN_STATES.indexOf(operation.state) === -1) return refreshContent();
        window.setTimeout(function () { poll(section); }, POLL_MS);
      })
      .catch(function () {
        // A network hiccup: the next poll tells the truth.
        window.setTimeout(function () { poll(section); }, POLL_MS * 3);
      });
  }

  function start() {
    document.querySelectorAll("[data-operation-url]").forEach(function (section) {
      if (section.dataset.polling) return;
      section.dataset.polling = "yes";
      window.setTimeout(function () { poll(section); }, POLL_MS);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
