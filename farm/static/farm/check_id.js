// The create form's live check: while the id is typed, ask the portal whether it follows
// the rule, is not reserved and is free (the same checks the service makes on submit).
(function () {
  "use strict";
  var input = document.getElementById("id_wiki_id");
  var family = document.getElementById("id_family");
  var verdict = document.getElementById("wiki-id-status");
  if (!input || !verdict) return;
  var timer = null;
  var latest = 0;

  function show(text, available) {
    verdict.textContent = text;
    verdict.className = "live-check " + (available ? "ok" : "bad");
    input.setAttribute("aria-invalid", available ? "false" : "true");
  }

  function check() {
    var wikiId = input.value.trim();
    if (!wikiId) {
      verdict.textContent = "";
      verdict.className = "live-check";
      input.removeAttribute("aria-invalid");
      return;
    }
    var ticket = ++latest;
    var query = new URLSearchParams({ id: wikiId, family: family ? family.value : "" });
    fetch(verdict.dataset.checkUrl + "?" + query, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) { return response.json(); })
      .then(function (body) {
        if (ticket !== latest) return; // an answer to an older keystroke
        show(body.available ? "✔ " + body.message : body.message, body.available);
      })
      .catch(function () {});
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(check, 250);
  }

  input.addEventListener("input", schedule);
  if (family) family.addEventListener("change", schedule);
  if (input.value) schedule();
})();
