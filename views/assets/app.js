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
  /** rowIds: the integrations on the page now (each is a <tbody id="integration-N">), by a selector's extra */
  function rowIds(extra) {
    var ids = [];
    document.querySelectorAll(`#integration-table tbody[id^='integration-']${extra || ""}`).forEach(function (tb) {
      var id = tb.id.slice("integration-".length);
      if (/^\d+$/.test(id)) ids.push(id);
    });
    return ids;
  }
  var held = function (el) {
    return el && el.hasAttribute && el.hasAttribute("data-keep-while-editing") && el.querySelector(keep);
  };
  document.addEventListener("htmx:beforeRequest", function (ev) {
    if (held(ev.detail.elt)) ev.preventDefault();
  });
  document.addEventListener("htmx:beforeSwap", function (ev) {
    // only refreshes (GETs) hold: the answer to the admin's own action (a POST) always lands
    var config = ev.detail.requestConfig;
    if (config && config.verb && config.verb !== "get") return;
    if (held(ev.detail.elt)) ev.detail.shouldSwap = false;
  });
  // The status poll covers the rows on the page now, including ones added since it loaded; the table's
  // own refresh keeps the rows whose detail is open, open.
  document.addEventListener("htmx:configRequest", function (ev) {
    if (ev.detail.elt.id === "failed-logins" && ev.detail.elt.open) ev.detail.parameters.open = "1";
    if (ev.detail.elt.id === "integration-table") {
      var open = rowIds(".open");
      if (open.length) ev.detail.parameters.open = open.join(",");
    }
    if (ev.detail.elt.id !== "live-status") return;
    ev.detail.path = `/integrations/live?ids=${rowIds().join(",")}`;
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
      if (editing) {
        var cancel = editing.querySelector("button.cancel");
        if (cancel) {
          ev.preventDefault();
          cancel.click();
        }
      } else if (t.closest("#panel #integration-form")) {
        ev.preventDefault();
        closePanel();
      }
    }
  });
  // The add form (or its password panel) in the page closes in place; the focus goes back to the
  // button that opened it. Without JavaScript, Cancel is a link back to the list.
  function closePanel() {
    var panel = document.getElementById("panel");
    if (!panel) return;
    panel.innerHTML = "";
    if (location.pathname !== "/integrations") history.replaceState(null, "", "/integrations");
    var add = document.querySelector(".page-head a.add");
    if (add) add.focus();
  }
  document.addEventListener("click", function (ev) {
    var a = ev.target.closest && ev.target.closest("#panel #integration-form a.cancel");
    if (!a) return;
    ev.preventDefault();
    closePanel();
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
    var tb = elt && elt.closest && elt.closest("tbody[id^='integration-']");
    if (!tb || !tb.id || !(target && (target.contains(tb) || tb.contains(target)))) return;
    focusRow = tb.id;
    var slot = elt.closest(".row-actions > *");
    focusSlot = tb.matches(".editing")
      ? 0
      : elt.closest("a.expand")
        ? -2
        : slot
          ? Array.prototype.indexOf.call(slot.parentNode.children, slot)
          : -1;
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!focusRow) return;
    var row = document.getElementById(focusRow);
    focusRow = null;
    var target = null;
    if (!row)
      target = document.querySelector(".toolbar input[type=search]"); // deleted: back to the list
    else if (row.matches(".editing")) target = row.querySelector("input:not([type=hidden])");
    else if (focusSlot === -2) target = row.querySelector("a.expand");
    else target = row.querySelector(".secret button.copy");
    if (row && !target) {
      var slots = row.querySelectorAll("td.actions .row-actions > *");
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
    // the server's message: the alert of an htmx answer, else the text of whatever came
    var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    var alert = doc.querySelector("[role=alert], main p");
    var text = ((alert || doc.body || doc.documentElement).textContent || "").replace(/\s+/g, " ").trim();
    if (xhr.status === 403) text = text || "Not allowed. Reload the page and try again.";
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
    showSelectPage(document);
  });
  // Bulk: the head's checkbox ticks every row on the page (it needs JavaScript, so it shows only with it).
  function showSelectPage(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("input.select-page").forEach(function (c) {
      c.hidden = false;
    });
  }
  document.addEventListener("change", function (ev) {
    var t = ev.target;
    if (!t || !t.matches) return;
    if (t.matches("input.select-page"))
      document.querySelectorAll("#integration-table input[name=ids][form=bulk]").forEach(function (c) {
        c.checked = t.checked;
      });
  });
  // One confirmation naming the count; it posts `confirmed=yes` so the server does not ask again.
  // Permissions are asked for on the page the form leads to; exports need no confirmation.
  var bulkVerbs = {
    activate: ["Activate", "They may log in again."],
    deactivate: ["Deactivate", "Their connected clients are disconnected at once."],
    delete: ["Delete", "Their clients are disconnected at once and they cannot log in again."],
  };
  document.addEventListener(
    "submit",
    function (ev) {
      var f = ev.target;
      if (!f || !f.matches || !f.matches("form[data-bulk]")) return;
      var action = f.elements.action.value;
      var all = f.elements.all.checked;
      var n = all
        ? Number(f.getAttribute("data-bulk"))
        : document.querySelectorAll("#integration-table input[name=ids][form=bulk]:checked").length;
      if (!action) {
        ev.preventDefault();
        return toast("Choose what to do with the selected integrations.");
      }
      if (n === 0) {
        ev.preventDefault();
        return toast(`Select integrations first: tick rows, or "All ${f.getAttribute("data-bulk")} matching".`);
      }
      var verb = bulkVerbs[action];
      if (!verb) return;
      if (!window.confirm(`${verb[0]} ${n} integration${n === 1 ? "" : "s"}? ${verb[1]}`)) return ev.preventDefault();
      var yes = f.querySelector("input[name=confirmed]");
      if (!yes) {
        yes = document.createElement("input");
        yes.type = "hidden";
        yes.name = "confirmed";
        f.appendChild(yes);
      }
      yes.value = "yes";
    },
    true,
  );
  document.addEventListener("htmx:afterSwap", function (ev) {
    localize(ev.target);
    showSelectPage(document);
  });
})();
