// Farm-wide runs. On a run's page: poll its progress JSON every 2 s and update the counts
// and bars in place; when the state or the number of failures changes, fetch the page again
// and swap its content (buttons, halted reason, failed wikis). Without JavaScript the page
// refreshes itself (a <noscript> meta refresh) while the run works.
// On the start form: show the migration fields only for a migration run.
(function () {
  "use strict";
  var POLL_MS = 2000;
  var BAR_STATES = ["succeeded", "failed", "skipped", "cancelled", "running", "queued"];

  function valueAt(data, path) {
    return path.split(".").reduce(function (value, key) {
      return value === undefined || value === null ? undefined : value[key];
    }, data);
  }

  function render(root, progress) {
    root.querySelectorAll("[data-run-field]").forEach(function (element) {
      var name = element.dataset.runField;
      if (name === "overall") {
        element.max = Math.max(progress.total, 1);
        element.value = progress.done;
        element.textContent = progress.done + " / " + progress.total;
        return;
      }
      var value = valueAt(progress, name);
      if (value === undefined) return;
      element.textContent = value;
      if (name === "state") element.className = "run-state run-" + value;
    });
    root.querySelectorAll("[data-run-bar]").forEach(function (bar) {
      var counts = progress.per_class[bar.dataset.runBar];
      if (!counts) return;
      var total = BAR_STATES.reduce(function (sum, state) { return sum + counts[state]; }, 0);
      var done = total - counts.queued - counts.running;
      bar.setAttribute("aria-label", done + " of " + total + " done");
      BAR_STATES.forEach(function (state) {
        var segment = bar.querySelector('[data-state="' + state + '"]');
        if (!segment) return;
        segment.style.width = (total ? (100 * counts[state]) / total : 0) + "%";
        segment.title = counts[state] + " " + state;
      });
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

  function poll(root) {
    fetch(root.dataset.runProgressUrl, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (progress) {
        if (!progress) {
          window.setTimeout(function () { poll(root); }, POLL_MS * 3);
          return;
        }
        render(root, progress);
        var changed =
          progress.state !== root.dataset.runState ||
          String(progress.totals.failed) !== root.dataset.runFailed;
        // What only the page shows (buttons, reasons, failures) changed, or the run ended.
        if (changed || !progress.active) return refreshContent();
        window.setTimeout(function () { poll(root); }, POLL_MS);
      })
      .catch(function () {
        // A network hiccup: the next poll tells the truth.
        window.setTimeout(function () { poll(root); }, POLL_MS * 3);
      });
  }

  function followRun() {
    var root = document.querySelector("[data-run-progress-url]");
    if (!root || root.dataset.polling || root.dataset.runActive !== "yes") return;
    root.dataset.polling = "yes";
    window.setTimeout(function () { poll(root); }, POLL_MS);
  }

  function migrationFields() {
    var form = document.querySelector("form.run-form");
    if (!form) return;
    var kinds = form.querySelectorAll('input[name="kind"]');
    var groups = form.querySelectorAll("[data-for-kind]");
    function update() {
      var checked = form.querySelector('input[name="kind"]:checked');
      groups.forEach(function (group) {
        var wanted = checked && checked.value === group.dataset.forKind;
        group.hidden = !wanted && !group.querySelector(".errorlist");
      });
    }
    kinds.forEach(function (input) { input.addEventListener("change", update); });
    update();
  }

  function start() {
    followRun();
    migrationFields();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
