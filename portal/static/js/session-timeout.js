/* Idle session-timeout warning.
 *
 * Reads <body data-idle-seconds data-warning-seconds data-keepalive-url data-expired-url>.
 * Does nothing when they are absent (signed out). The timer starts at page load (i.e. it is reset
 * by navigation only; the server enforces the real timeout and this page never pings in the
 * background). `warning_seconds` before the end, the modal #session-timeout-dialog opens:
 *   #session-stay     -> POST keepalive_url (X-CSRFToken); 2xx: close and restart, else expired_url
 *   #session-signout  -> submits the header sign-out form (#signout-form)
 * At the end, the browser goes to expired_url. All visible text lives in base.html (translated).
 * Tabs of the same session share their last activity time through localStorage.
 */
(function () {
  "use strict";
  var data = document.body && document.body.dataset;
  if (!data || !data.idleSeconds || !data.expiredUrl) { return; }

  var idleMs = parseInt(data.idleSeconds, 10) * 1000;
  var warnMs = parseInt(data.warningSeconds, 10) * 1000;
  if (!(idleMs > 0)) { return; }
  if (!(warnMs >= 0)) { warnMs = 0; }
  if (warnMs > idleMs) { warnMs = idleMs; }

  var keepaliveUrl = data.keepaliveUrl;
  var expiredUrl = data.expiredUrl;
  var dialog = document.getElementById("session-timeout-dialog");
  var remaining = document.getElementById("session-timeout-remaining");
  var stayButton = document.getElementById("session-stay");
  var signoutButton = document.getElementById("session-signout");
  var STORAGE_KEY = "portal.session.lastActivity";

  var deadline = 0;
  var timer = null;
  var pending = false;
  var finished = false;
  var returnFocus = null;

  function restart(from) {
    deadline = (from || Date.now()) + idleMs;
  }

  function share() {
    try { window.localStorage.setItem(STORAGE_KEY, String(Date.now())); } catch (e) { /* storage unavailable */ }
  }

  function format(ms) {
    var total = Math.max(0, Math.ceil(ms / 1000));
    var minutes = Math.floor(total / 60);
    var seconds = total % 60;
    return minutes + ":" + (seconds < 10 ? "0" : "") + seconds;
  }

  function isOpen() {
    return !!(dialog && dialog.open);
  }

  function openDialog() {
    if (!dialog || isOpen()) { return; }
    returnFocus = document.activeElement;
    if (typeof dialog.showModal === "function") { dialog.showModal(); } else { dialog.setAttribute("open", ""); }
    document.documentElement.classList.add("modal-is-open");
    if (stayButton) { stayButton.focus(); }
  }

  function closeDialog() {
    if (!isOpen()) { return; }
    if (typeof dialog.close === "function") { dialog.close(); } else { dialog.removeAttribute("open"); }
    document.documentElement.classList.remove("modal-is-open");
    if (returnFocus && typeof returnFocus.focus === "function" && document.contains(returnFocus)) {
      returnFocus.focus();
    }
    returnFocus = null;
  }

  function leave(url) {
    if (finished) { return; }
    finished = true;
    window.clearInterval(timer);
    window.location.assign(url);
  }

  function tick() {
    if (finished) { return; }
    var left = deadline - Date.now();
    if (left <= 0) {
      leave(expiredUrl);
      return;
    }
    if (warnMs > 0 && left <= warnMs) {
      if (remaining) { remaining.textContent = format(left); }
      openDialog();
    } else if (isOpen()) {
      closeDialog(); // another tab kept the session alive
    }
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function stay() {
    if (pending || finished) { return; }
    if (!keepaliveUrl || !window.fetch) { leave(expiredUrl); return; }
    pending = true;
    if (stayButton) { stayButton.setAttribute("aria-busy", "true"); }
    window.fetch(keepaliveUrl, {
      method: "POST",
      credentials: "same-origin",
      redirect: "manual", // a redirect (e.g. to sign-in) is not a success
      headers: { "X-CSRFToken": csrfToken(), "X-Requested-With": "XMLHttpRequest", "Accept": "application/json" }
    }).then(function (response) {
      if (response.ok) {
        restart();
        share();
        closeDialog();
      } else {
        leave(expiredUrl);
      }
    }, function () {
      leave(expiredUrl);
    }).then(function () {
      pending = false;
      if (stayButton) { stayButton.removeAttribute("aria-busy"); }
    });
  }

  function signOut() {
    var form = document.getElementById("signout-form");
    if (form) {
      finished = true;
      window.clearInterval(timer);
      form.submit();
    } else {
      leave(expiredUrl);
    }
  }

  if (stayButton) { stayButton.addEventListener("click", stay); }
  if (signoutButton) { signoutButton.addEventListener("click", signOut); }
  if (dialog) {
    // Escape means "I'm here": treat it like "Stay signed in" instead of silently closing.
    dialog.addEventListener("cancel", function (event) {
      event.preventDefault();
      stay();
    });
  }

  window.addEventListener("storage", function (event) {
    if (event.key === STORAGE_KEY && event.newValue) {
      var at = parseInt(event.newValue, 10);
      if (at > 0 && at + idleMs > deadline) {
        restart(at);
        tick();
      }
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { tick(); }
  });

  restart();
  share();
  timer = window.setInterval(tick, 1000);
  tick();
})();
