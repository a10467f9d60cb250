// Gatehouse page helpers; loaded as a file so the Content-Security-Policy can forbid inline script.
(function () {
  // Times: relative ("3 min ago") within a week, the exact local time on hover; older ones as a local date.
  var rtf = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }) : null;
  function relative(d) {
    var s = (d.getTime() - Date.now()) / 1000,
      a = Math.abs(s);
    if (!rtf || a >= 7 * 86400) return d.toLocaleString();
    if (a < 45) return s < 0 ? "just now" : "in a few seconds";
    if (a < 3600) return rtf.format(Math.round(s / 60), "minute");
    if (a < 86400) return rtf.format(Math.round(s / 3600), "hour");
    return rtf.format(Math.round(s / 86400), "day");
  }
  function localize(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("time[data-local]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d.getTime())) return;
      el.textContent = relative(d);
      el.title = d.toLocaleString();
    });
  }
  setInterval(function () {
    localize(document);
  }, 30000);
  document.addEventListener("htmx:oobAfterSwap", function (ev) {
    localize(ev.detail.target || document);
  });
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest && ev.target.closest("button[data-copy]");
    if (!btn) return;
    var text = btn.getAttribute("data-copy");
    var done = function () {
      btn.textContent = "Copied";
      setTimeout(function () {
        btn.textContent = "Copy";
      }, 1500);
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
      try {
        document.execCommand("copy");
        done();
      } catch (_) {}
    }
  });
  // The live status refresh must not snap shut a session list the admin has opened.
  document.addEventListener("htmx:oobBeforeSwap", function (ev) {
    var t = ev.detail.target;
    if (t && t.querySelector && t.querySelector("details[open]")) ev.detail.shouldSwap = false;
  });
  // Self-refreshing parts (agents, onboarding, the table) hold still while the admin reads, ticks or types
  // in them, or while an action of one of their rows is under way (htmx marks its element .htmx-request):
  // asked when the refresh is sent and again when its answer arrives, so a refresh that left before a row
  // action cannot swap the row away under it (the action's answer, a reset's new password, would land in
  // a detached row).
  var keep =
    "details[open], input:focus:not([type=checkbox]), select:focus, textarea:focus, input[type=checkbox]:checked, .secret, tr.editing, tr .htmx-request";
  var held = function (el) {
    return el && el.hasAttribute && el.hasAttribute("data-keep-while-editing") && el.querySelector(keep);
  };
  document.addEventListener("htmx:beforeRequest", function (ev) {
    if (held(ev.detail.elt)) ev.preventDefault();
  });
  document.addEventListener("htmx:beforeSwap", function (ev) {
    if (held(ev.detail.elt)) ev.detail.shouldSwap = false;
  });
  // The status poll covers the rows on the page now, including ones added since it loaded.
  document.addEventListener("htmx:configRequest", function (ev) {
    if (ev.detail.elt.id === "failed-logins" && ev.detail.elt.open) ev.detail.parameters.open = "1";
    if (ev.detail.elt.id !== "live-status") return;
    var ids = [];
    document.querySelectorAll("#integration-table tr[id^='integration-']").forEach(function (tr) {
      var id = tr.id.slice("integration-".length);
      if (/^\d+$/.test(id)) ids.push(id);
    });
    ev.detail.path = `/integrations/live?ids=${ids.join(",")}`;
  });
  // Destructive plain forms (no htmx) name their target before they are sent; a confirmed one says so
  // (`confirmed=yes`), so a route that asks again without JS (removing an agent) does not ask twice.
  document.addEventListener(
    "submit",
    function (ev) {
      var f = ev.target;
      if (!f || !f.getAttribute || !f.getAttribute("data-confirm")) return;
      if (!window.confirm(f.getAttribute("data-confirm"))) return ev.preventDefault();
      if (!f.querySelector("input[name=confirmed]")) {
        var yes = document.createElement("input");
        yes.type = "hidden";
        yes.name = "confirmed";
        yes.value = "yes";
        f.appendChild(yes);
      }
    },
    true,
  );
  // Keyboard: Enter saves the row being edited, Escape cancels it (or the add form); after a row
  // action the focus returns to that row instead of falling to the page's top.
  document.addEventListener("keydown", function (ev) {
    var t = ev.target;
    if (!t || !t.closest) return;
    var editing = t.closest("tr.editing");
    if (editing && ev.key === "Enter" && t.tagName === "INPUT") {
      ev.preventDefault();
      var save = editing.querySelector("button.save");
      if (save) save.click();
    } else if (ev.key === "Escape") {
      var cancel = editing
        ? editing.querySelector("button.cancel")
        : t.closest("#integration-form")
          ? document.querySelector("#integration-form a.link[href='/integrations']")
          : null;
      if (cancel) {
        ev.preventDefault();
        cancel.click();
      }
    }
  });
  // Where the focus is when a swap happens (not when its request left: a live refresh sent before a row
  // action and answered after it would otherwise forget the action's row), so it can be put back.
  var focusRow = null,
    focusSlot = -1;
  document.addEventListener("htmx:beforeSwap", function (ev) {
    if (!ev.detail.shouldSwap) return;
    var target = ev.detail.target,
      active = document.activeElement;
    var elt = target && active && active !== document.body && target.contains(active) ? active : ev.detail.elt;
    var tr = elt && elt.closest && elt.closest("tr[id^='integration-']");
    if (!tr || !tr.id || !(target && (target.contains(tr) || tr.contains(target)))) return;
    focusRow = tr.id;
    var slot = elt.closest("td.actions > *");
    focusSlot = tr.matches("tr.editing") ? 0 : slot ? Array.prototype.indexOf.call(slot.parentNode.children, slot) : -1;
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!focusRow) return;
    var row = document.getElementById(focusRow);
    focusRow = null;
    var target = null;
    if (!row)
      target = document.querySelector(".toolbar input[type=search]"); // deleted: back to the list
    else if (row.matches("tr.editing")) target = row.querySelector("input:not([type=hidden])");
    else target = row.querySelector(".secret button.copy");
    if (row && !target) {
      var slots = row.querySelectorAll("td.actions > *");
      var slot = slots[focusSlot] || slots[0];
      if (slot) target = slot.matches("a, button") ? slot : slot.querySelector("a, button");
    }
    if (target) target.focus();
  });
  // Back and forward: the search fields show the filter of the list they belong to.
  function syncToolbar() {
    var params = new URLSearchParams(location.search);
    document.querySelectorAll("form.toolbar [name]").forEach(function (f) {
      f.value = params.get(f.name) || (f.tagName === "SELECT" && f.options.length ? f.options[0].value : "");
    });
  }
  document.addEventListener("htmx:historyRestore", syncToolbar);
  // the browser's back-forward cache and form autofill can also bring back typed text
  window.addEventListener("pageshow", syncToolbar);
  // Every failed action says so, with what to do (htmx keeps the page as it was).
  function toast(text) {
    var t = document.getElementById("toast");
    if (!t) return;
    t.textContent = text;
    t.hidden = false;
    clearTimeout(t._timer);
    t._timer = setTimeout(function () {
      t.hidden = true;
    }, 8000);
  }
  document.addEventListener("htmx:responseError", function (ev) {
    var xhr = ev.detail.xhr;
    var text = (xhr.responseText || "")
      .replace(/<[^>]*>/g, " ")
      .replace(/\s+/g, " ")
      .trim();
    if (xhr.status === 403)
      text = `Not allowed (${text || "forbidden"}). If you signed in again in another tab, reload this page.`;
    else if (xhr.status === 404)
      text = `${text || "Not found"}: it was changed or deleted elsewhere; the list is refreshed.`;
    else if (!text) text = `The appliance answered ${xhr.status}; nothing was changed. Try again.`;
    toast(text);
    document.body.dispatchEvent(new CustomEvent("gatehouse:changed"));
  });
  document.addEventListener("htmx:sendError", function () {
    toast("The appliance cannot be reached; check the connection and try again.");
  });
  // Live by push: one event stream per page; the browser reconnects by itself after a restart.
  function listen() {
    if (!(document.getElementById("integration-table") || document.querySelector("[data-live]")) || !window.EventSource)
      return;
    var source = new EventSource("/events");
    source.addEventListener("changed", function () {
      document.body.dispatchEvent(new CustomEvent("gatehouse:changed"));
    });
    source.addEventListener("connector", function () {
      document.body.dispatchEvent(new CustomEvent("gatehouse:connector"));
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    localize(document);
    listen();
  });
  document.addEventListener("htmx:afterSwap", function (ev) {
    localize(ev.target);
  });
})();
