/* Collapsible main navigation for narrow screens.
 * Without JS the toggle button stays [hidden] and the nav is always shown. */
(function () {
  "use strict";
  var toggle = document.getElementById("nav-toggle");
  if (!toggle) { return; }
  var nav = document.getElementById(toggle.getAttribute("aria-controls"));
  if (!nav) { return; }
  var narrow = window.matchMedia("(max-width: 767.98px)");

  function setExpanded(expanded) {
    toggle.setAttribute("aria-expanded", expanded ? "true" : "false");
    nav.classList.toggle("is-collapsed", !expanded);
  }

  setExpanded(false);
  toggle.hidden = false;

  toggle.addEventListener("click", function () {
    setExpanded(toggle.getAttribute("aria-expanded") !== "true");
  });

  // Escape closes the open menu on phones and returns focus to the button.
  nav.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && narrow.matches && toggle.getAttribute("aria-expanded") === "true") {
      setExpanded(false);
      toggle.focus();
    }
  });

  // Collapse again when moving from a wide to a narrow layout.
  var onChange = function (event) { if (event.matches) { setExpanded(false); } };
  if (narrow.addEventListener) { narrow.addEventListener("change", onChange); }
  else if (narrow.addListener) { narrow.addListener(onChange); }
})();
