/* Passkeys (WebAuthn) without inline scripts (CSP script-src 'self').
 *
 * Every form[data-passkey] is one ceremony: on submit we POST to its data-options-url (JSON, CSRF
 * header from the page's meta tag) for the options the server made (a single-use challenge stored
 * server-side), ask the browser (navigator.credentials.create or .get), put the signed answer as JSON
 * in the form's hidden "credential" field and submit the form normally, so the server answers with an
 * ordinary page (errors in the page's language, or the next page).
 *
 * form[data-passkey-conditional] also offers the passkeys this browser holds in the email field's
 * autofill (conditional mediation), when the browser supports it; pressing the button cancels that
 * quiet request first and asks again with the browser's own dialog.
 */
(function () {
  "use strict";
  if (window.portalPasskeys) { return; }
  window.portalPasskeys = true;

  function toBytes(value) {
    var b64 = value.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var bin = window.atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return window.btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      var out = { type: d.type, id: toBytes(d.id) };
      if (d.transports) { out.transports = d.transports; }
      return out;
    });
  }

  function creationOptions(json) {
    var o = Object.assign({}, json);
    o.challenge = toBytes(json.challenge);
    o.user = Object.assign({}, json.user, { id: toBytes(json.user.id) });
    o.excludeCredentials = descriptors(json.excludeCredentials);
    return o;
  }

  function requestOptions(json) {
    var o = Object.assign({}, json);
    o.challenge = toBytes(json.challenge);
    o.allowCredentials = descriptors(json.allowCredentials);
    return o;
  }

  function serialise(cred) {
    var r = cred.response;
    var out = {
      id: cred.id, rawId: toB64url(cred.rawId), type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || null,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: toB64url(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = toB64url(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = toB64url(r.authenticatorData);
      out.response.signature = toB64url(r.signature);
      if (r.userHandle) { out.response.userHandle = toB64url(r.userHandle); }
    }
    return out;
  }

  function csrfToken(form) {
    // The form's own token first: anonymous pages (sign-in) carry no csrf-token meta tag (no session: G3).
    var input = form && form.querySelector('input[name="csrf_token"]');
    if (input && input.value) { return input.value; }
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function fetchOptions(url, form) {
    return window.fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(form), "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) { throw new Error("options " + response.status); }
      return response.json();
    });
  }

  function say(form, key) {
    var status = form.querySelector("[data-passkey-status]");
    if (!status) { return; }
    status.textContent = "";
    var text = key ? status.getAttribute("data-" + key) : "";
    window.setTimeout(function () { status.textContent = text || ""; }, 30);
  }

  function finish(form, credential) {
    form.querySelector('input[name="credential"]').value = JSON.stringify(serialise(credential));
    HTMLFormElement.prototype.submit.call(form);
  }

  var conditional = null;  // AbortController of the quiet autofill request, if one is waiting

  function ceremony(form, mode) {
    var button = form.querySelector("[data-passkey-button]");
    if (conditional) { conditional.abort(); conditional = null; }
    if (button) { button.disabled = true; button.setAttribute("aria-busy", "true"); }
    say(form, "working");
    fetchOptions(form.getAttribute("data-options-url"), form).then(function (json) {
      if (mode === "create") {
        return navigator.credentials.create({ publicKey: creationOptions(json) });
      }
      return navigator.credentials.get({ publicKey: requestOptions(json) });
    }).then(function (credential) {
      if (!credential) { throw new Error("no credential"); }
      finish(form, credential);
    }).catch(function (err) {
      if (button) { button.disabled = false; button.removeAttribute("aria-busy"); }
      var name = err && err.name;
      say(form, (name === "NotAllowedError" || name === "AbortError" || name === "InvalidStateError")
        ? "cancelled" : "failed");
    });
  }

  function startConditional(form) {
    if (!window.PublicKeyCredential.isConditionalMediationAvailable) { return; }
    window.PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
      if (!ok) { return null; }
      var controller = new AbortController();
      conditional = controller;
      return fetchOptions(form.getAttribute("data-options-url"), form).then(function (json) {
        if (controller.signal.aborted) { return null; }
        return navigator.credentials.get({
          publicKey: requestOptions(json), mediation: "conditional", signal: controller.signal
        });
      }).then(function (credential) {
        if (credential && conditional === controller) { finish(form, credential); }
      });
    }).catch(function () { /* cancelled, or the button took over: nothing to say */ });
  }

  function init() {
    var forms = document.querySelectorAll("form[data-passkey]");
    if (!forms.length) { return; }
    if (!window.PublicKeyCredential || !navigator.credentials) {
      document.querySelectorAll("[data-passkey-unsupported]").forEach(function (el) { el.hidden = false; });
      return;
    }
    forms.forEach(function (form) {
      var mode = form.getAttribute("data-passkey");
      form.hidden = false;
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        ceremony(form, mode);
      });
      if (mode === "get" && form.hasAttribute("data-passkey-conditional")) { startConditional(form); }
    });
    document.querySelectorAll("[data-passkey-section]").forEach(function (el) { el.hidden = false; });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
}());
