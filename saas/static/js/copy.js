/* Copy buttons: <button data-copy="#selector" hidden>Copy</button> copies the text of the element the selector
   names, then says "Copied" for a moment. Served from our own origin (CSP script-src 'self'); no inline code.
   The buttons stay hidden without this script: selecting the text is the way then. */
(function () {
  "use strict";

  function fallbackCopy(text) {
    // Older browsers, and pages not served over HTTPS or localhost (navigator.clipboard is missing there).
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "copy-buffer";
    document.body.appendChild(area);
    area.select();
    var copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (error) {
      copied = false;
    }
    document.body.removeChild(area);
    return copied;
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).then(
        function () { return true; },
        function () { return fallbackCopy(text); });
    }
    return Promise.resolve(fallbackCopy(text));
  }

  function say(button, words) {
    if (!button.dataset.label) {
      button.dataset.label = button.textContent;
      button.dataset.ariaLabel = button.getAttribute("aria-label") || "";
    }
    button.textContent = words;
    button.setAttribute("aria-label", words);
    clearTimeout(button._copyTimer);
    button._copyTimer = setTimeout(function () {
      button.textContent = button.dataset.label;
      if (button.dataset.ariaLabel) {
        button.setAttribute("aria-label", button.dataset.ariaLabel);
      }
    }, 2000);
  }

  function onClick(event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) {
      return;
    }
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) {
      return;
    }
    copyText(source.textContent.trim()).then(function (copied) {
      say(button, copied ? "Copied" : "Select and copy");
    });
  }

  function start() {
    var buttons = document.querySelectorAll("button[data-copy]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].hidden = false;
    }
    document.addEventListener("click", onClick);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
