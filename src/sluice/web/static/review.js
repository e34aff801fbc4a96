// The review screen: keyboard shortcuts and the reviewer's active time on the task.
// Plain script, no build step. Shortcuts never fire while typing in a field.
(function () {
  "use strict";
  var decide = document.getElementById("decide-form");
  var label = document.getElementById("label");
  var active = 0, since = document.hasFocus() && !document.hidden ? Date.now() : null;

  function pause() { if (since !== null) { active += Date.now() - since; since = null; } }
  function resume() { if (since === null && !document.hidden) { since = Date.now(); } }
  window.addEventListener("blur", pause);
  window.addEventListener("focus", resume);
  document.addEventListener("visibilitychange", function () { document.hidden ? pause() : resume(); });
  document.addEventListener("keydown", resume);

  if (decide) {
    decide.addEventListener("submit", function () {
      pause();
      document.getElementById("active_seconds").value = (active / 1000).toFixed(1);
    });
  }

  function click(id) { var el = document.getElementById(id); if (el) { el.click(); } }

  document.addEventListener("keydown", function (event) {
    var tag = (event.target && event.target.tagName) || "";
    if (event.altKey || event.ctrlKey || event.metaKey || /^(INPUT|TEXTAREA|SELECT)$/.test(tag)) { return; }
    var alternatives = document.querySelectorAll("#alternatives li");
    if (event.key >= "1" && event.key <= "9" && label) {
      var index = Number(event.key) - 1;
      if (index < alternatives.length) {
        var wanted = alternatives[index].textContent.replace(/^\s*\d+\s*/, "").replace(/\s*\([^)]*\)\s*$/, "").trim();
        label.value = wanted;
        event.preventDefault();
      }
      return;
    }
    var keys = { a: "approve", s: "correct", r: "reject", c: "claim", e: "escalate", n: "next" };
    if (keys[event.key]) { event.preventDefault(); click(keys[event.key]); }
  });
})();
