/* Forms behaviour (no inline scripts: CSP script-src 'self'). Loaded by the form macros; runs once.
 * - The error summary receives focus when the page loads, so keyboard and screen-reader users
 *   start from the list of problems (each links to its field).
 * - Show/hide password buttons ([aria-controls] on .password-toggle), hidden until wired up here.
 * - [data-copy]: copies the text of the element it names (the authenticator key, recovery codes).
 * - [data-download]: saves the text of the element it names as a .txt file, built here in the
 *   browser from what is already on the page (the server keeps only hashes of recovery codes).
 * - [data-print]: opens the print dialog (the print stylesheet shows just the codes).
 */
(function () {
  "use strict";
  if (window.portalForms) { return; }
  window.portalForms = true;

  function textOf(id) {
    var el = document.getElementById(id);
    if (!el) { return ""; }
    return el.getAttribute("data-text") || el.innerText.trim();
  }

  function announce(button, message) {
    var status = document.getElementById(button.getAttribute("data-status") || "");
    if (status) {
      status.textContent = "";
      window.setTimeout(function () { status.textContent = message; }, 50);
    }
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy failed")); }
    });
  }

  function init() {
    var summary = document.querySelector("[data-error-summary]");
    if (summary) { summary.focus(); }

    document.querySelectorAll(".password-toggle[aria-controls]").forEach(function (button) {
      var input = document.getElementById(button.getAttribute("aria-controls"));
      if (!input) { return; }
      button.hidden = false;
      button.addEventListener("click", function () {
        var show = input.type === "password";
        input.type = show ? "text" : "password";
        button.setAttribute("aria-pressed", show ? "true" : "false");
        button.textContent = button.getAttribute(show ? "data-hide-label" : "data-show-label");
      });
      // Never leave a password readable in the form that is sent (autofill, back/forward cache).
      if (input.form) {
        input.form.addEventListener("submit", function () {
          input.type = "password";
          button.setAttribute("aria-pressed", "false");
          button.textContent = button.getAttribute("data-show-label");
        });
      }
    });

    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        copy(textOf(button.getAttribute("data-copy"))).then(function () {
          announce(button, button.getAttribute("data-done") || "");
        }, function () {
          announce(button, button.getAttribute("data-failed") || "");
        });
      });
    });

    document.querySelectorAll("[data-download]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var blob = new Blob([textOf(button.getAttribute("data-download")) + "\n"], {type: "text/plain;charset=utf-8"});
        var url = URL.createObjectURL(blob);
        var link = document.createElement("a");
        link.href = url;
        link.download = button.getAttribute("data-filename") || "download.txt";
        document.body.appendChild(link);
        link.click();
        document.body.removeChild(link);
        window.setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
        announce(button, button.getAttribute("data-done") || "");
      });
    });

    document.querySelectorAll("[data-print]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () { window.print(); });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
