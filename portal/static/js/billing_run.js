/* Statement batch progress (billing/staff/run.html): reload every two seconds while the run is going. */
(function () {
  "use strict";
  var run = document.querySelector("[data-run-status=running]");
  if (run) { window.setTimeout(function () { window.location.reload(); }, 2000); }
})();
