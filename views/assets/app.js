// Gatehouse page helpers; loaded as a file so the Content-Security-Policy can forbid inline script.
(function () {
  function localize(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) el.textContent = d.toLocaleString();
    });
  }
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest && ev.target.closest("button[data-copy]");
    if (!btn) return;
    var text = btn.getAttribute("data-copy");
    var done = function () {
      btn.textContent = "Copied";
      setTimeout(function () { btn.textContent = "Copy"; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {});
    } else {
      var code = btn.parentElement.querySelector(".secret-value");
      var range = document.createRange();
      range.selectNodeContents(code);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      try { document.execCommand("copy"); done(); } catch (e) {}
    }
  });
  // The live status refresh must not snap shut a session list the admin has opened.
  document.addEventListener("htmx:oobBeforeSwap", function (ev) {
    var t = ev.detail.target;
    if (t && t.querySelector && t.querySelector("details[open]")) ev.detail.shouldSwap = false;
  });
  // Self-refreshing parts (agents, onboarding) hold still while the admin reads, ticks or types in them.
  document.addEventListener("htmx:beforeRequest", function (ev) {
    var el = ev.detail.elt;
    if (el && el.hasAttribute && el.hasAttribute("data-keep-while-editing") &&
        el.querySelector("details[open], :focus, input[type=checkbox]:checked")) ev.preventDefault();
  });
  document.addEventListener("DOMContentLoaded", function () { localize(document); });
  document.addEventListener("htmx:afterSwap", function (ev) { localize(ev.target); });
})();
