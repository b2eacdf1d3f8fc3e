// Small helpers of Kinko's pages.  A file, not inline script, so the pages' CSP can forbid
// inline script altogether.  Every page works without it; it only makes some steps smoother.
(function () {
  "use strict";
  // Buttons marked data-confirm ask before their form is sent (revoking, disabling).
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var form = event.target;
    var message = (button && button.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  }, true);
  // A refusal the server retargets (HX-Retarget: the message slot of a review row, say) is
  // meant to be shown: htmx would otherwise drop every 4xx answer unseen.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.status >= 400 && xhr.status < 500 && xhr.getResponseHeader("HX-Retarget")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  // After htmx swaps in new content, move focus to a message inside it, so screen readers
  // and keyboard users are told what happened.
  document.addEventListener("htmx:afterSwap", function (event) {
    var status = event.target.querySelector("[role=status], [role=alert]");
    if (status) {
      status.setAttribute("tabindex", "-1");
      status.focus();
    }
  });
})();
