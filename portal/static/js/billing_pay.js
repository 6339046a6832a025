/* The card payment page (billing/pay.html). Card details go only to Stripe through Stripe.js (or
   localstripe's stand-in in development): confirmCardSetup gives a PaymentMethod id, which we post with
   the form; our server computes the amount and confirms the PaymentIntent. If the bank asks for 3-D
   Secure, confirmCardPayment runs here and the server reads the result back. A double click sends the
   same attempt key, so it can never charge twice. */
(function () {
  "use strict";
  var form = document.getElementById("pay-form");
  if (!form || typeof window.Stripe === "undefined") { return; }
  var stripe = window.Stripe(form.dataset.stripeKey);
  var card = stripe.elements().create("card");
  card.mount("#card-element");
  var button = document.getElementById("pay-submit");
  var status = document.getElementById("pay-status");
  var errorBox = document.getElementById("pay-error");
  var amountBox = form.querySelector("#amount");
  var amountField = amountBox ? amountBox.closest(".field") : null;
  var busy = false;

  function syncAmount() {
    var other = form.querySelector("input[name=amount_choice]:checked");
    if (amountField) { amountField.hidden = !(other && other.value === "other"); }
  }
  form.querySelectorAll("input[name=amount_choice]").forEach(function (r) { r.addEventListener("change", syncAmount); });
  syncAmount();

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
    errorBox.setAttribute("tabindex", "-1");
    errorBox.focus();
  }

  function post(url, data) {
    return fetch(url, {method: "POST", body: data, credentials: "same-origin",
                       headers: {"Accept": "application/json", "X-Requested-With": "fetch"}})
      .then(function (r) { return r.json(); });
  }

  function fresh(answer) {
    /* After a refused card: a new attempt and a new SetupIntent for the next try. */
    if (answer.attempt_key) { form.elements.attempt_key.value = answer.attempt_key; }
    if (answer.client_secret_next) { form.dataset.clientSecret = answer.client_secret_next; }
    form.elements.payment_method.value = "";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) { return; }
    busy = true;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    errorBox.hidden = true;
    status.textContent = form.dataset.msgWorking;
    var done = function () { busy = false; button.disabled = false; button.removeAttribute("aria-busy"); status.textContent = ""; };
    var setup = form.elements.payment_method.value
      ? Promise.resolve({setupIntent: {payment_method: form.elements.payment_method.value}})
      : stripe.confirmCardSetup(form.dataset.clientSecret, {payment_method: {card: card}});
    setup.then(function (result) {
      if (result.error) { throw {shown: (result.error && result.error.message) || form.dataset.msgCard}; }
      var pm = result.setupIntent.payment_method;
      form.elements.payment_method.value = typeof pm === "string" ? pm : pm.id;
      return post(form.getAttribute("action") || window.location.pathname, new FormData(form));
    }).then(function (answer) {
      if (answer.status !== "requires_action") { return answer; }
      return stripe.confirmCardPayment(answer.client_secret).then(function () {
        var data = new FormData();
        data.append("csrf_token", form.elements.csrf_token.value);
        return post(answer.finish, data);
      });
    }).then(function (answer) {
      if (answer.status === "succeeded") { window.location.assign(answer.redirect); return; }
      fresh(answer);
      done();
      showError(answer.message || form.dataset.msgFailed);
    }).catch(function (err) {
      done();
      showError((err && err.shown) || form.dataset.msgNetwork);
    });
  });
})();
